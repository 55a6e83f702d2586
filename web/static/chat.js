// Room chat for the Chorus client (docs/protocol.md, "chat").
//
// After joining, the server says how much history the room has
// (chatNotify); the panel pulls it in pages (chatHistory) and then receives
// new messages as they come (chat). Messages are kept in seq order and
// de-duplicated by seq (a page and a push may overlap). In large rooms the
// server notifies instead of pushing, and the panel pulls again. Reactions
// arrive merged ({kind: "reaction", reaction, count}) and show briefly in
// the reaction bar.
//
// The state for tests and the page lives in state.chat: {messages: [{seq,
// from, fromName, text, to, at}], reactions: {emoji: total}}.

const PAGE = 100;
const REACTIONS = ['👍', '❤️', '😂', '👏'];

export class Chat {
  // panel, list, form, input, toggle and reactionBar are the page's
  // elements; state is window.chorus.
  constructor({ panel, list, form, input, toggle, reactionBar, state }) {
    Object.assign(this, { panel, list, form, input, toggle, reactionBar, state });
    this.send = null;
    this.seq = 0;
    this.pulling = false;
    this.unread = 0;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const text = input.value.trim();
      if (!text || !this.send) return;
      this.send({ type: 'chat', text });
      input.value = '';
    });
    toggle.addEventListener('click', () => this.show(panel.hidden));
    for (const r of REACTIONS) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'btn btn-small reaction';
      b.textContent = r;
      b.addEventListener('click', () => this.send && this.send({ type: 'reaction', reaction: r }));
      reactionBar.append(b);
    }
    this.reset();
  }

  // reset forgets the room: a new session starts (send: how to reach the
  // server, null when there is none).
  reset(send = null) {
    this.send = send;
    this.seq = 0;
    this.pulling = false;
    this.list.replaceChildren();
    this.state.chat = { messages: [], reactions: {}, oldest: 0, latest: 0 };
    this.setUnread(0);
  }

  show(on) {
    this.panel.hidden = !on;
    this.toggle.setAttribute('aria-pressed', String(on));
    if (on) {
      this.setUnread(0);
      this.input.focus();
    }
  }

  setUnread(n) {
    this.unread = n;
    const label = this.toggle.querySelector('.ctl-label') || this.toggle;
    label.textContent = n > 0 ? `Chat (${n})` : 'Chat';
  }

  // handle takes the chat messages of the protocol; it returns false for
  // other types.
  handle(msg) {
    switch (msg.type) {
      case 'chatNotify':
        if (msg.chat) {
          this.state.chat.oldest = msg.chat.oldest;
          this.state.chat.latest = Math.max(this.state.chat.latest, msg.chat.latest);
        }
        this.pull();
        return true;
      case 'chatHistory':
        this.pulling = false;
        this.add(msg.messages || []);
        if (msg.more) this.pull();
        return true;
      case 'chat':
        this.add(msg.messages || []);
        return true;
      case 'chatSent':
        return true; // the same message arrives pushed
      default:
        return false;
    }
  }

  // pull asks for what came after the newest message held.
  pull() {
    if (this.pulling || !this.send || this.seq >= this.state.chat.latest) return;
    this.pulling = true;
    this.send({ type: 'chatHistory', id: `chat-${Date.now()}`, after: this.seq, limit: PAGE });
  }

  add(messages) {
    let fresh = 0;
    for (const m of messages) {
      if (m.kind === 'reaction') {
        this.react(m);
        continue;
      }
      if (m.seq > 0) {
        if (m.seq <= this.seq) continue; // already shown (a page and a push overlapped)
        this.seq = m.seq;
        this.state.chat.latest = Math.max(this.state.chat.latest, m.seq);
      }
      this.state.chat.messages.push({ seq: m.seq, from: m.from, fromName: m.fromName, text: m.text, to: m.to || '', at: m.at });
      this.list.append(this.render(m));
      fresh += 1;
    }
    if (fresh > 0) {
      this.list.scrollTop = this.list.scrollHeight;
      if (this.panel.hidden) this.setUnread(this.unread + fresh);
    }
  }

  render(m) {
    const li = document.createElement('li');
    li.className = m.to ? 'chat-msg chat-private' : 'chat-msg';
    const who = document.createElement('span');
    who.className = 'chat-from';
    who.textContent = (m.fromName || m.from || 'server') + (m.to ? ' (private)' : '');
    const text = document.createElement('span');
    text.className = 'chat-text';
    text.textContent = m.text || '';
    li.append(who, text);
    return li;
  }

  react(m) {
    const r = this.state.chat.reactions;
    r[m.reaction] = (r[m.reaction] || 0) + (m.count || 1);
    const pop = document.createElement('span');
    pop.className = 'reaction-pop';
    pop.textContent = `${m.reaction} ${m.count > 1 ? `×${m.count}` : ''}`;
    this.reactionBar.append(pop);
    setTimeout(() => pop.remove(), 2500);
  }
}
