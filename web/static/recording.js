// Recording notice and control for the Chorus client (docs/protocol.md,
// "Recording").
//
// The server tells every participant who in the room is being recorded:
// a `recording` message lists their ids (none: recording stopped); one
// follows `joined` at once when the room is being recorded already. While
// anyone is, the page shows a red "● REC" badge in the top bar, and the
// tiles of those recorded show a small REC mark (the page asks isRecorded).
//
// When `joined` says canRecord, the Record button starts recording the
// whole room (startRecording) and, while anyone is recorded, stops it
// (stopRecording). The button waits for the reply; the badge follows the
// server's notices only, since a recording starts when the recorder has the
// media, not when it is asked.

export class Recording {
  // badge and button are the page's elements; state (window.chorus) gets
  // `recording` (the recorded participant ids) and `canRecord`; nameOf(id)
  // names a participant for the badge's tooltip ('' for unknown ones);
  // onChange runs when the recorded set changes.
  constructor({ badge, button, state, nameOf, onChange }) {
    this.badge = badge;
    this.button = button;
    this.label = button.querySelector('.ctl-label') || button;
    this.state = state;
    this.nameOf = nameOf;
    this.onChange = onChange;
    this.pending = null; // {id, type} of the request awaiting its reply
    this.seq = 0;
    this.reset();
  }

  // reset forgets everything: a new session starts, or the session ended.
  reset() {
    this.pending = null;
    this.state.canRecord = false;
    this.set([]);
  }

  // joined reads whether this client may start and stop recordings.
  joined(msg) {
    this.state.canRecord = !!msg.canRecord;
    this.render();
  }

  // set takes the recorded participants from a recording message.
  set(ids) {
    const list = Array.isArray(ids) ? ids.filter((id) => typeof id === 'string') : [];
    const before = this.state.recording || [];
    this.state.recording = list;
    this.render();
    const same = before.length === list.length && before.every((id, i) => id === list[i]);
    if (!same && this.onChange) this.onChange();
  }

  get active() {
    return this.state.recording.length > 0;
  }

  isRecorded(pid) {
    return !!pid && this.state.recording.includes(pid);
  }

  // toggle asks the server to start recording the room, or to stop it while
  // anyone is recorded; send(msg) sends and reports success.
  toggle(send) {
    if (this.pending || !this.state.canRecord) return;
    const type = this.active ? 'stopRecording' : 'startRecording';
    const id = `rec-${++this.seq}`;
    if (!send({ type, id })) return;
    this.pending = { id, type };
    this.render();
  }

  // settle takes a reply (recordingStarted, recordingStopped or error) and,
  // if it answers our request, returns that request's type.
  settle(msg) {
    if (!this.pending || !msg.id || msg.id !== this.pending.id) return null;
    const { type } = this.pending;
    this.pending = null;
    this.render();
    return type;
  }

  // render updates the badge and the button.
  render() {
    const ids = this.state.recording;
    const on = ids.length > 0;
    this.badge.hidden = !on;
    if (on) {
      const names = ids.map((id) => this.nameOf(id) || 'a participant');
      const unique = [...new Set(names)];
      const title = `This room is being recorded (${unique.join(', ')})`;
      this.badge.title = title;
      this.badge.setAttribute('aria-label', title);
    }
    const b = this.button;
    b.hidden = !this.state.canRecord;
    b.disabled = !!this.pending;
    b.classList.toggle('recording', on);
    b.setAttribute('aria-pressed', String(on));
    let label = on ? 'Stop recording' : 'Record';
    if (this.pending) label = this.pending.type === 'startRecording' ? 'Starting…' : 'Stopping…';
    this.label.textContent = label;
    b.title = on ? 'Stop recording this room' : 'Record this room on the server (everyone is told)';
  }
}
