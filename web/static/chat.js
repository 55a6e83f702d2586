// Room chat for the Chorus client (docs/protocol.md, "chat").
//
// After joining, the server says how much history the room has
// (chatNotify); the panel pulls it in pages (chatHistory) and then receives
// new messages as they come (chat). Messages are kept in seq order and
// de-duplicated by seq (a page and a push may overlap, and a push may come
// before the page that precedes it). In large rooms the server notifies
// instead of pushing, and the panel pulls again. A session that joins the
// same room again (a reconnect) keeps what it has and pulls only what it
// missed, unless the room's history epoch changed (the room was closed and
// created again: its seq numbers started over). Reactions arrive merged
// ({kind: "reaction", reaction, count}) and show briefly in the reaction bar.
//
// The state for tests and the page lives in state.chat: {messages: [{seq,
// from, fromName, text, to, at}], reactions: {emoji: total}, pulls: the
// `after` of the last pulls}.

const PAGE = 100;
const REACTIONS = ['👍', '❤️', '😂', '👏'];

export class Chat {
  // panel, list, form, input, toggle and reactionBar are the page's
  // elements; state is window.chorus.
  constructor({ panel, list, form, input, toggle, reactionBar, state }) {
    Object.assign(this, { panel, list, form, input, toggle, reactionBar, state });
    this.send = null;
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
    this.room = null;
    this.clear();
  }

  // clear forgets every message.
  clear() {
    this.seen = new Set(); // seqs held
    this.upto = 0; // every stored message up to this seq has been pulled
    this.epoch = '';
    this.pulling = false;
    this.list.replaceChildren();
    this.state.chat = { messages: [], reactions: {}, oldest: 0, latest: 0, pulls: [] };
    this.setUnread(0);
  }

  // start begins a session in room (send: how to reach the server). The
  // same room as before keeps its messages: only what was missed is pulled.
  start(send, room) {
    if (room !== this.room) this.clear();
    this.room = room;
    this.send = send;
    this.pulling = false;
    // pushes that come before chatNotify wait for it: they may belong to
    // a new epoch that clears what we hold
    this.early = [];
    this.awaitNotify = true;
  }

  // detach ends a session; the messages stay on screen.
  detach() {
    this.send = null;
    this.pulling = false;
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
        if (msg.chat && msg.chat.epoch && msg.chat.epoch !== this.epoch) {
          // another history (or the first): seq numbers start over
          if (this.epoch) this.clear();
          this.epoch = msg.chat.epoch;
        }
        if (msg.chat) {
          if (msg.chat.oldest > 0 && this.upto < msg.chat.oldest - 1) this.upto = msg.chat.oldest - 1; // older ones are gone
          this.state.chat.oldest = msg.chat.oldest;
          this.state.chat.latest = Math.max(this.state.chat.latest, msg.chat.latest);
        }
        if (this.awaitNotify) {
          this.awaitNotify = false;
          for (const ms of this.early) this.add(ms);
          this.early = [];
        }
        this.pull();
        return true;
      case 'chatHistory':
        this.pulling = false;
        if (msg.chat && msg.chat.epoch && this.epoch && msg.chat.epoch !== this.epoch) return true; // a stale reply
        this.add(msg.messages || []);
        for (const m of msg.messages || []) this.upto = Math.max(this.upto, m.seq);
        if (msg.chat && this.upto < msg.chat.oldest - 1) this.upto = msg.chat.oldest - 1; // older ones are gone
        if (msg.more || this.upto < this.state.chat.latest) this.pull();
        return true;
      case 'chat':
        if (this.awaitNotify) this.early.push(msg.messages || []);
        else this.add(msg.messages || []);
        return true;
      case 'chatSent':
        return true; // the same message arrives pushed
      default:
        return false;
    }
  }

  // pull asks for what came after the newest message held.
  pull() {
    if (this.pulling || !this.send || this.upto >= this.state.chat.latest) return;
    this.pulling = true;
    const pulls = this.state.chat.pulls;
    pulls.push(this.upto); // for tests: where each pull started
    if (pulls.length > 20) pulls.shift();
    this.send({ type: 'chatHistory', id: `chat-${Date.now()}`, after: this.upto, limit: PAGE });
  }

  add(messages) {
    let fresh = 0;
    for (const m of messages) {
      if (m.kind === 'reaction') {
        this.react(m);
        continue;
      }
      if (m.seq > 0) {
        if (this.seen.has(m.seq)) continue; // already shown (a page and a push overlapped)
        this.seen.add(m.seq);
        this.state.chat.latest = Math.max(this.state.chat.latest, m.seq);
      }
      this.insert(m);
      fresh += 1;
    }
    while (this.seen.has(this.upto + 1)) this.upto++; // pushes follow what was pulled
    if (fresh > 0) {
      this.list.scrollTop = this.list.scrollHeight;
      if (this.panel.hidden) this.setUnread(this.unread + fresh);
    }
  }

  // insert places a message in seq order (private messages, seq 0, go last).
  insert(m) {
    const entry = { seq: m.seq, from: m.from, fromName: m.fromName, text: m.text, to: m.to || '', at: m.at };
    const list = this.state.chat.messages;
    let i = list.length;
    if (m.seq > 0) {
      while (i > 0 && (list[i - 1].seq === 0 || list[i - 1].seq > m.seq)) i--;
      // private messages right before the insertion point stay before it
      while (i < list.length && list[i].seq === 0) i++;
    }
    const li = this.render(m);
    if (i === list.length) this.list.append(li);
    else this.list.insertBefore(li, this.list.children[i]);
    list.splice(i, 0, entry);
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
