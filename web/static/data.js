// App data for the Chorus client (docs/protocol.md, "App data").
//
// The client joins with data: true; the server then opens two data channels
// on the subscriber connection: chorus-reliable (ordered, reliable) and
// chorus-lossy (unordered, no retransmissions). Every message carries a
// small binary header: on the way up the topic and the recipients' ids, on
// the way down the topic and the sender's id.
//
// Apps use window.chorus:
//   chorus.sendData(payload, {to: [ids], topic, reliable}) -> true if sent
//     (payload: a string, an ArrayBuffer or a typed array; to omitted or
//     empty: everyone else in the room; reliable defaults to true)
//   chorus.onData((msg) => ...) -> a function that removes the listener;
//     msg is {from, topic, payload: Uint8Array, text (payload as UTF-8),
//     reliable}
//   chorus.data: {open, received: the last 100 messages, sent, refused}

const VERSION = 1;
const KEEP = 100;
const enc = new TextEncoder();
const dec = new TextDecoder();

function bytes(payload) {
  if (payload instanceof Uint8Array) return payload;
  if (payload instanceof ArrayBuffer) return new Uint8Array(payload);
  if (ArrayBuffer.isView(payload)) return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  return enc.encode(String(payload));
}

// encodeUp builds a client-to-server message.
export function encodeUp(payload, topic = '', to = []) {
  const t = enc.encode(topic);
  const ids = to.map((id) => enc.encode(id));
  const body = bytes(payload);
  if (t.length > 255 || ids.length > 255 || ids.some((b) => b.length === 0 || b.length > 255)) {
    throw new Error('data: topic or recipient ids too long');
  }
  const size = 3 + t.length + ids.reduce((n, b) => n + 1 + b.length, 0) + body.length;
  const out = new Uint8Array(size);
  let i = 0;
  out[i++] = VERSION;
  out[i++] = t.length;
  out.set(t, i);
  i += t.length;
  out[i++] = ids.length;
  for (const b of ids) {
    out[i++] = b.length;
    out.set(b, i);
    i += b.length;
  }
  out.set(body, i);
  return out;
}

// decodeDown parses a server-to-client message (null if malformed).
export function decodeDown(buf) {
  const b = new Uint8Array(buf);
  if (b.length < 3 || b[0] !== VERSION) return null;
  let i = 1;
  const tl = b[i++];
  if (i + tl + 1 > b.length) return null;
  const topic = dec.decode(b.subarray(i, i + tl));
  i += tl;
  const fl = b[i++];
  if (i + fl > b.length) return null;
  const from = dec.decode(b.subarray(i, i + fl));
  i += fl;
  return { from, topic, payload: b.slice(i) };
}

export class AppData {
  // state is window.chorus.
  constructor(state) {
    this.state = state;
    this.channels = {};
    this.listeners = new Set();
    state.data = { open: false, received: [], sent: 0, refused: 0 };
    state.sendData = (payload, opts) => this.send(payload, opts);
    state.onData = (fn) => {
      this.listeners.add(fn);
      return () => this.listeners.delete(fn);
    };
  }

  // reset forgets the channels of an ended session.
  reset() {
    this.channels = {};
    this.state.data.open = false;
  }

  // attach listens for the server's data channels on a subscriber connection.
  attach(pc) {
    pc.addEventListener('datachannel', (ev) => {
      const dc = ev.channel;
      if (dc.label !== 'chorus-reliable' && dc.label !== 'chorus-lossy') return;
      dc.binaryType = 'arraybuffer';
      const reliable = dc.label === 'chorus-reliable';
      const opened = () => {
        this.channels[dc.label] = dc;
        this.state.data.open = !!(this.channels['chorus-reliable'] && this.channels['chorus-lossy']);
      };
      if (dc.readyState === 'open') opened();
      else dc.addEventListener('open', opened);
      dc.addEventListener('close', () => {
        if (this.channels[dc.label] === dc) delete this.channels[dc.label];
        this.state.data.open = false;
      });
      dc.addEventListener('message', (e) => this.receive(e.data, reliable));
    });
  }

  receive(data, reliable) {
    if (typeof data === 'string') return; // the server sends binary only
    const m = decodeDown(data);
    if (!m) return;
    m.reliable = reliable;
    m.text = dec.decode(m.payload);
    const list = this.state.data.received;
    list.push(m);
    if (list.length > KEEP) list.splice(0, list.length - KEEP);
    for (const fn of this.listeners) {
      try {
        fn(m);
      } catch (err) {
        console.error('chorus: data listener', err);
      }
    }
  }

  send(payload, { to = [], topic = '', reliable = true } = {}) {
    const dc = this.channels[reliable ? 'chorus-reliable' : 'chorus-lossy'];
    if (!dc || dc.readyState !== 'open') {
      this.state.data.refused++;
      return false;
    }
    dc.send(encodeUp(payload, topic, to));
    this.state.data.sent++;
    return true;
  }
}
