// Chorus browser client.
//
// Two RTCPeerConnections per participant: the publisher connection carries
// our own camera and microphone (we offer), the subscriber connection carries
// everyone else's tracks (the server offers, we answer). Signaling is JSON
// over a WebSocket at /ws on the page's own host.
//
// Camera video is published as three simulcast layers (rids q, h, f: 1/4,
// 1/2 and full resolution). For every remote video the client asks the
// server for the layer that fits the tile's size on screen, and pauses video
// that cannot be seen (trackSettings); the server reports the layer it
// forwards (layerChanged), shown as a small badge on the tile.
//
// Screen sharing: the "Share screen" button adds a display capture to the
// publisher connection as one more single-layer video track and re-offers;
// every publisher offer carries `sources`, what each of our tracks shows
// (camera, microphone or screen). Received screen shares get their own tile,
// labelled "<name> (screen)" and shown larger than the cameras; the server
// tells them apart by the `source` of the track (trackPublished, joined).
//
// Recording: while the server records anyone in the room, a red REC badge
// shows in the top bar and the recorded participants' tiles carry a REC
// mark; a participant allowed to (joined.canRecord) gets a Record button.
// See recording.js.
//
// State for tests and debugging is exposed on window.chorus.
//
// Test hook: the URL parameter maxLayer=0|1|2 (e.g. ?room=r&name=n&maxLayer=0)
// makes the client ask for that maximum layer for every video it receives,
// whatever the size of its tile (0 lowest, 2 full). At run time,
// window.chorus.setMaxLayer(n) does the same, and setMaxLayer(null) returns
// to sizing by the tile. Invisible video is paused either way.

import { Recording } from './recording.js';
import { Chat } from './chat.js';
import { AppData } from './data.js';

const MAX_ROOM_BYTES = 128;
const MAX_NAME_BYTES = 64;
const PING_INTERVAL_MS = 20000;

// Simulcast encodings of the camera, lowest first; the server knows the
// layers by these rids. Chromium drops the top ones by itself when the
// camera's picture is too small for them.
const SIMULCAST_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', maxBitrate: 1500000 },
];
const LAYER_DEBOUNCE_MS = 300; // trackSettings follow tile size changes after this quiet time
// What the server assumes for a track until we say otherwise.
const DEFAULT_TRACK_SETTINGS = Object.freeze({ maxLayer: 2, paused: false });
const LAYER_LABELS = { '-1': 'paused', 0: 'LD', 1: 'SD', 2: 'HD' };
const LAYER_RIDS = { 0: 'q', 1: 'h', 2: 'f' };
const SOURCE_SCREEN = 'screen';
const SOURCE_CAMERA = 'camera';
const SOURCE_MICROPHONE = 'microphone';

const $ = (id) => document.getElementById(id);

// The maxLayer test hook from the page's URL (see the top of this file).
// REJOIN_ATTEMPTS bounds the reconnections after a server drain (with
// backoff up to 30 s between them: about 5 minutes in all).
const REJOIN_ATTEMPTS = 12;
const urlMaxLayer = parseLayer(new URLSearchParams(location.search).get('maxLayer'));
// An access token (?token=, from the application that sent the user here)
// goes with the join; with it the room and name may be left out of the URL.
const urlToken = (new URLSearchParams(location.search).get('token') || '').trim();
// Test and troubleshooting hook: ?ice=relay uses TURN relays only.
const urlRelayOnly = new URLSearchParams(location.search).get('ice') === 'relay';

// tokenClaims reads the payload of a JWT (not its signature: the server
// checks that) for the room and name to prefill.
function tokenClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return {};
  }
}

const ui = {
  banner: $('banner'),
  bannerText: $('banner-text'),
  bannerRetry: $('banner-retry'),
  bannerDismiss: $('banner-dismiss'),
  joinView: $('join-view'),
  joinForm: $('join-form'),
  joinError: $('join-error'),
  roomInput: $('room'),
  nameInput: $('name'),
  callView: $('call-view'),
  roomLabel: $('room-label'),
  status: $('status'),
  copyLink: $('copy-link'),
  notice: $('media-notice'),
  noticeText: $('media-notice-text'),
  noticeDismiss: $('media-notice-dismiss'),
  grid: $('grid'),
  micButton: $('mic-button'),
  camButton: $('cam-button'),
  shareButton: $('share-button'),
  recordButton: $('record-button'),
  recBadge: $('rec-badge'),
  audioUnlock: $('audio-unlock'),
  leaveButton: $('leave-button'),
  tileTemplate: $('tile-template'),
};

// Public state; the session keeps it up to date.
const chorus = {
  state: 'idle', // idle | connecting | joined | failed | left
  room: '',
  name: '',
  participantId: null,
  participants: {}, // id -> {id, name, tracks: {trackId: track}} (remote participants)
  publisherLayers: {}, // own track id -> [q, h, f] active flags the server asked for
  pcs: { publisher: null, subscriber: null },
  localStream: null,
  mediaError: null, // text of the camera/microphone problem, if any
  errors: [], // server error messages received: {code, message, id}
  banner: null, // text currently shown in the error banner
  audioBlocked: false, // remote audio waits for a click
  micEnabled: true,
  camEnabled: true,
  screenSharing: false, // our screen share is on (the track is being sent)
  screenStream: null, // the display capture we share
  timings: {}, // milliseconds since navigation: start, wsOpen, joined, published, firstRemoteFrame
  session: null,
  // Simulcast, per received track id (the server's track id):
  layers: {}, // the layer the server forwards: {layer (-1 paused, 0..2), reason, at (ms since navigation)}
  trackSettings: {}, // what we last asked for: {maxLayer, paused}
  maxLayerOverride: null, // 0..2 forces that maximum layer for all received video (URL maxLayer=, setMaxLayer)
  setMaxLayer: (n) => setMaxLayerOverride(n),
  // Screen sharing (the button does the same). Both return promises.
  startScreenShare: () => (chorus.session ? chorus.session.startScreenShare() : Promise.resolve(false)),
  stopScreenShare: () => (chorus.session ? chorus.session.stopScreenShare() : Promise.resolve()),
  // Recording (recording.js): ids of the participants the server records now,
  // and whether we may start and stop recording (joined.canRecord).
  recording: [],
  canRecord: false,
};
window.chorus = chorus;

const recording = new Recording({
  badge: ui.recBadge,
  button: ui.recordButton,
  state: chorus,
  nameOf: (pid) => {
    if (pid === chorus.participantId) return 'you';
    const p = chorus.participants[pid];
    return p ? p.name || 'Guest' : '';
  },
  onChange: () => {
    for (const tile of tiles.values()) tile.refreshRecMark();
  },
});

// Room chat (chat.js): history pulled after joining, then pushed messages.
const chat = new Chat({
  panel: $('chat-panel'), list: $('chat-list'), form: $('chat-form'), input: $('chat-input'),
  toggle: $('chat-button'), reactionBar: $('reaction-bar'), state: chorus,
});

// App data channels (data.js): chorus.sendData and chorus.onData for apps.
const appData = new AppData(chorus);

// ---------------------------------------------------------------- helpers

function byteLength(s) {
  return new TextEncoder().encode(s).length;
}

function wsURL() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws`;
}

function pageURL(params) {
  const u = new URL(location.pathname, location.href);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

function errText(err) {
  if (!err) return 'unknown error';
  if (err.name && err.message) return `${err.name}: ${err.message}`;
  return String(err.message || err.name || err);
}

function now() {
  return Math.round(performance.now());
}

// parseLayer reads a simulcast layer (0, 1 or 2); anything else is null.
function parseLayer(v) {
  if (v === null || v === undefined || v === '') return null;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 && n <= 2 ? n : null;
}

// layerForHeight picks the layer for a tile of this height in CSS pixels:
// up to 240 device pixels the lowest (1/4 of 720p), up to 480 the middle
// one, above that the full picture.
function layerForHeight(cssHeight) {
  const px = cssHeight * (window.devicePixelRatio || 1);
  if (px <= 240) return 0;
  if (px <= 480) return 1;
  return 2;
}

function randomRoom() {
  const words = ['amber', 'brook', 'cedar', 'delta', 'ember', 'fjord', 'grove', 'harbor', 'iris', 'juniper', 'kestrel', 'lumen'];
  const w = words[Math.floor(Math.random() * words.length)];
  const n = Math.floor(1000 + Math.random() * 9000);
  return `${w}-${n}`;
}

function loadSavedName() {
  try { return localStorage.getItem('chorus.name') || ''; } catch { return ''; }
}

function saveName(name) {
  try { localStorage.setItem('chorus.name', name); } catch { /* storage may be unavailable */ }
}

// ---------------------------------------------------------------- banner and notices

function showBanner(text, { retry = false } = {}) {
  chorus.banner = text;
  ui.bannerText.textContent = text;
  ui.bannerRetry.hidden = !retry;
  ui.banner.hidden = false;
}

function hideBanner() {
  chorus.banner = null;
  ui.banner.hidden = true;
}

function showNotice(text) {
  ui.noticeText.textContent = text;
  ui.notice.hidden = !text;
}

function setStatus(text) {
  ui.status.textContent = text;
}

// ---------------------------------------------------------------- tiles

// Tiles by key: a participant id for a remote camera tile, 'screen:' and the
// server track id for a remote screen share, 'local' and 'local-screen' for
// our own camera and screen.
const tiles = new Map();

class Tile {
  // participantId defaults to the key; screen marks a screen-share tile;
  // trackId is the server track id a remote screen tile shows.
  constructor(key, { local = false, name = '', participantId = key, screen = false, trackId = '' } = {}) {
    this.key = key;
    this.id = participantId;
    this.local = local;
    this.screen = screen;
    this.trackId = trackId;
    this.stream = null;
    this.audioMuted = false;
    this.videoMuted = false;
    this.el = ui.tileTemplate.content.firstElementChild.cloneNode(true);
    this.video = this.el.querySelector('video');
    this.nameEl = this.el.querySelector('.tile-name');
    this.avatar = this.el.querySelector('.avatar');
    this.micBadge = this.el.querySelector('.badge-mic-off');
    this.camBadge = this.el.querySelector('.badge-cam-off');
    this.layerBadge = this.el.querySelector('.layer-badge');
    this.recMark = this.el.querySelector('.rec-mark');
    this.renderHeight = 0; // CSS pixels, from the ResizeObserver
    this.inView = true; // from the IntersectionObserver
    this.settingsTimer = 0;
    this.el.dataset.participantId = participantId;
    this.el.dataset.source = screen ? SOURCE_SCREEN : SOURCE_CAMERA;
    if (trackId) this.el.dataset.trackId = trackId;
    this.el.classList.add(local ? 'local' : 'remote');
    this.el.classList.toggle('screen', screen);
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.muted = local; // never play our own microphone back
    this.video.addEventListener('loadeddata', () => this.onFirstFrame());
    this.video.addEventListener('resize', () => this.refresh());
    this.setName(name);
    ui.grid.appendChild(this.el);
    layoutGrid();
    if (!local) {
      tileOfElement.set(this.el, this);
      tileResizeObserver.observe(this.el);
      tileViewObserver.observe(this.el);
    }
    this.refresh();
  }

  setName(name) {
    const who = this.local ? 'You' : (name || 'Guest');
    const label = this.screen ? `${who} (screen)` : who;
    this.name = name;
    this.nameEl.textContent = label;
    this.el.title = this.local && name && !this.screen ? `You (${name})` : label;
    this.avatar.textContent = (name || who).trim().charAt(0).toUpperCase() || '?';
  }

  attach(stream) {
    if (this.video.srcObject !== stream) {
      this.stream = stream;
      this.video.srcObject = stream;
      this.play();
    }
    this.refresh();
  }

  detach() {
    this.stream = null;
    this.video.srcObject = null;
    this.refresh();
  }

  // Remote tiles play a MediaStream of their own: a participant's camera
  // and screen arrive in one stream (its id is the participant id), and
  // each tile shows its part of it.
  hasTrack(track) {
    return !!this.stream && this.stream.getTrackById(track.id) === track;
  }

  addTrack(track) {
    if (this.hasTrack(track)) return;
    if (!this.stream) {
      this.attach(new MediaStream([track]));
      return;
    }
    this.stream.addTrack(track);
    this.refresh();
  }

  // removeTrack reports whether the tile has no tracks left.
  removeTrack(track) {
    if (this.stream) this.stream.removeTrack(track);
    const empty = !this.stream || this.stream.getTracks().length === 0;
    if (empty && this.stream) this.detach();
    else this.refresh();
    return empty;
  }

  setMuted(audioMuted, videoMuted) {
    const videoChanged = videoMuted !== this.videoMuted;
    this.audioMuted = audioMuted;
    this.videoMuted = videoMuted;
    this.refresh();
    if (videoChanged) this.scheduleSettings(0); // camera off: the placeholder hides the video
  }

  hasLiveVideo() {
    return !!this.stream && this.stream.getVideoTracks().some((t) => t.readyState === 'live');
  }

  refresh() {
    const showVideo = this.hasLiveVideo() && !this.videoMuted;
    this.el.classList.toggle('no-video', !showVideo);
    this.el.dataset.audioMuted = String(this.audioMuted);
    this.el.dataset.videoMuted = String(this.videoMuted);
    this.micBadge.hidden = !this.audioMuted;
    this.camBadge.hidden = !this.videoMuted;
    this.refreshLayerBadge();
    this.refreshRecMark();
  }

  // refreshRecMark shows whether the server records this tile's participant.
  refreshRecMark() {
    const pid = this.local ? chorus.participantId : this.id;
    const on = recording.isRecorded(pid);
    this.recMark.hidden = !on;
    this.el.classList.toggle('recorded', on);
  }

  videoTracks() {
    return this.stream ? this.stream.getVideoTracks().filter((t) => t.readyState === 'live') : [];
  }

  // refreshLayerBadge shows the simulcast layer the server forwards for our
  // video. A publisher that sends a single layer has nothing to choose
  // from: layer 0 for the reason "best" shows no badge.
  refreshLayerBadge() {
    if (this.local) return;
    const track = this.videoTracks()[0];
    const info = track && chorus.layers[track.id];
    const show = !!info && !(info.layer === 0 && info.reason === 'best');
    this.layerBadge.hidden = !show;
    if (!show) {
      delete this.el.dataset.layer;
      return;
    }
    const label = LAYER_LABELS[info.layer] || `L${info.layer}`;
    this.layerBadge.textContent = label;
    this.layerBadge.dataset.layer = String(info.layer);
    this.layerBadge.title = info.layer < 0
      ? `Video paused (${info.reason})`
      : `Receiving simulcast layer ${LAYER_RIDS[info.layer] || info.layer} (${info.reason})`;
    this.el.dataset.layer = String(info.layer);
  }

  // wantedSettings is what this tile asks the server for: the layer that
  // fits its size (or the forced one), and a pause while nobody can see it
  // (out of view, page hidden, or the camera-off placeholder shown).
  wantedSettings() {
    const visible = this.inView && this.renderHeight > 0 && !this.videoMuted && document.visibilityState !== 'hidden';
    const forced = chorus.maxLayerOverride;
    return { maxLayer: forced !== null ? forced : layerForHeight(this.renderHeight), paused: !visible };
  }

  // scheduleSettings sends the tile's wishes after delay ms, unless they
  // change again meanwhile (then the wait starts over).
  scheduleSettings(delay = LAYER_DEBOUNCE_MS) {
    if (this.local) return;
    clearTimeout(this.settingsTimer);
    this.settingsTimer = setTimeout(() => this.flushSettings(), delay);
  }

  // flushSettings sends trackSettings for each of our video tracks whose
  // wishes differ from what the server already has.
  flushSettings() {
    clearTimeout(this.settingsTimer);
    this.settingsTimer = 0;
    const session = chorus.session;
    if (this.local || !session || session.ended) return;
    const want = this.wantedSettings();
    for (const track of this.videoTracks()) {
      const prev = chorus.trackSettings[track.id] || DEFAULT_TRACK_SETTINGS;
      const msg = { type: 'trackSettings', trackId: track.id };
      // A paused track keeps its layer: resuming then needs one change only.
      if (!want.paused && want.maxLayer !== prev.maxLayer) msg.maxLayer = want.maxLayer;
      if (want.paused !== prev.paused) msg.paused = want.paused;
      if (msg.maxLayer === undefined && msg.paused === undefined) continue;
      if (session.sendTrackSettings(msg)) {
        chorus.trackSettings[track.id] = {
          maxLayer: msg.maxLayer !== undefined ? msg.maxLayer : prev.maxLayer,
          paused: want.paused,
        };
      }
    }
  }

  play() {
    const p = this.video.play();
    if (!p) return;
    p.catch((err) => {
      if (!this.local && err && err.name === 'NotAllowedError') {
        // Autoplay with sound is blocked until the user interacts with the
        // page: play muted now and offer a button that turns sound on.
        this.video.muted = true;
        this.video.play().catch(() => {});
        setAudioBlocked(true);
      }
      // AbortError: a newer srcObject replaced this one; nothing to do.
    });
  }

  onFirstFrame() {
    if (this.local) return;
    const t = chorus.timings;
    if (t.firstRemoteFrame === undefined) t.firstRemoteFrame = now();
  }

  remove() {
    clearTimeout(this.settingsTimer);
    if (!this.local) {
      tileResizeObserver.unobserve(this.el);
      tileViewObserver.unobserve(this.el);
    }
    this.video.srcObject = null;
    this.el.remove();
    layoutGrid();
  }
}

// Remote tiles follow their size and visibility; each change reaches the
// server after LAYER_DEBOUNCE_MS of quiet.
const tileOfElement = new WeakMap();
const tileResizeObserver = new ResizeObserver((entries) => {
  for (const e of entries) {
    const tile = tileOfElement.get(e.target);
    if (!tile) continue;
    const h = e.contentRect.height;
    if (h === tile.renderHeight) continue;
    tile.renderHeight = h;
    tile.scheduleSettings();
  }
});
const tileViewObserver = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const tile = tileOfElement.get(e.target);
    if (!tile || tile.inView === e.isIntersecting) continue;
    tile.inView = e.isIntersecting;
    tile.scheduleSettings();
  }
});
document.addEventListener('visibilitychange', () => {
  for (const tile of tiles.values()) tile.scheduleSettings();
});

// The device pixels per tile change with the zoom level or a move to
// another screen.
function watchPixelRatio() {
  const mq = window.matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`);
  mq.addEventListener('change', () => {
    for (const tile of tiles.values()) tile.scheduleSettings();
    watchPixelRatio();
  }, { once: true });
}
watchPixelRatio();

// setMaxLayerOverride forces a maximum layer (0..2) for all received video,
// or with null (or anything else) returns to sizing by the tiles. The new
// wishes are sent at once.
function setMaxLayerOverride(n) {
  chorus.maxLayerOverride = parseLayer(n);
  for (const tile of tiles.values()) tile.flushSettings();
  return chorus.maxLayerOverride;
}

// layoutGrid picks the number of columns that makes the 16:9 tiles as large
// as possible while they all fit in the grid; when they cannot fit at a
// usable size, the tiles fill the width and the grid scrolls.
//
// Remote screen shares come first and, with two columns or more, span two
// columns and two rows (the grid gets the class "wide"); then the layout
// that makes the screens largest wins.
function layoutGrid() {
  const grid = ui.grid;
  const n = grid.children.length;
  const screens = grid.querySelectorAll(':scope > .tile.screen.remote').length;
  grid.dataset.count = String(n);
  const cs = getComputedStyle(grid);
  const gap = parseFloat(cs.columnGap) || 0;
  const width = grid.clientWidth - (parseFloat(cs.paddingLeft) || 0) - (parseFloat(cs.paddingRight) || 0);
  const height = grid.clientHeight - (parseFloat(cs.paddingTop) || 0) - (parseFloat(cs.paddingBottom) || 0);
  if (n === 0 || width <= 0 || height <= 0) return; // hidden, or nothing to place
  const cellsFor = (cols) => (screens > 0 && cols >= 2 ? n + 3 * screens : n);
  // What a layout is judged by: the width of a screen tile if there is
  // one, of any tile otherwise.
  const score = (cols, w) => (screens > 0 && cols >= 2 ? 2 * w + gap : w);
  let best = { cols: 1, w: 0, score: 0 };
  for (let cols = 1; cols <= cellsFor(cols); cols++) {
    const rows = Math.ceil(cellsFor(cols) / cols);
    const w = Math.min((width - gap * (cols - 1)) / cols, ((height - gap * (rows - 1)) / rows) * 16 / 9);
    if (score(cols, w) > best.score) best = { cols, w, score: score(cols, w) };
  }
  const minW = Math.min(width, 240);
  if (best.w < minW) {
    const cols = Math.max(1, Math.floor((width + gap) / (minW + gap)));
    best = { cols, w: (width - gap * (cols - 1)) / cols };
  }
  grid.classList.toggle('wide', screens > 0 && best.cols >= 2);
  grid.style.setProperty('--cols', String(best.cols));
  grid.style.setProperty('--tile-w', `${Math.floor(best.w)}px`);
}
new ResizeObserver(() => layoutGrid()).observe(ui.grid);

function setAudioBlocked(blocked) {
  chorus.audioBlocked = blocked;
  ui.audioUnlock.hidden = !blocked;
}

ui.audioUnlock.addEventListener('click', () => {
  let ok = true;
  for (const tile of tiles.values()) {
    if (tile.local) continue;
    tile.video.muted = false;
    const p = tile.video.play();
    if (p) p.catch(() => { ok = false; tile.video.muted = true; tile.video.play().catch(() => {}); setAudioBlocked(true); });
  }
  if (ok) setAudioBlocked(false);
});

function removeAllTiles() {
  for (const tile of tiles.values()) tile.remove();
  tiles.clear();
  setAudioBlocked(false);
}

// ---------------------------------------------------------------- local media

// acquireMedia asks for camera and microphone, falling back to fewer devices.
// It never rejects: it resolves to {stream, problem}.
async function acquireMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return {
      stream: null,
      problem: 'Camera and microphone are only available on HTTPS or localhost pages, so you joined to watch and listen only.',
    };
  }
  const video = { width: { ideal: 1280 }, height: { ideal: 720 } };
  const attempts = [
    { constraints: { audio: true, video }, what: 'camera and microphone' },
    { constraints: { audio: true, video: false }, what: 'microphone only' },
    { constraints: { audio: false, video }, what: 'camera only' },
  ];
  let firstErr = null;
  for (const a of attempts) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(a.constraints);
      if (!firstErr) return { stream, problem: null };
      return { stream, problem: `${describeMediaError(firstErr)} You joined with ${a.what}.` };
    } catch (err) {
      firstErr = firstErr || err;
    }
  }
  return { stream: null, problem: `${describeMediaError(firstErr)} You joined to watch and listen only.` };
}

function describeMediaError(err) {
  const name = err && err.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return `Camera or microphone access was denied: ${errText(err)}.`;
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError') {
    return `No usable camera or microphone was found: ${errText(err)}.`;
  }
  if (name === 'NotReadableError' || name === 'AbortError') {
    return `The camera or microphone could not be started (is another application using it?): ${errText(err)}.`;
  }
  return `Camera or microphone unavailable: ${errText(err)}.`;
}

// ---------------------------------------------------------------- session

class Session {
  constructor(room, name) {
    this.room = room;
    this.name = name;
    this.ws = null;
    this.opened = false;
    this.lastErrorAt = -Infinity;
    this.ended = false; // leave() or failure: ignore everything after
    this.chain = Promise.resolve(); // incoming messages, one at a time
    this.subscriberAnswered = false;
    this.pendingLocalCandidates = []; // subscriber candidates held until our first answer is sent
    this.pendingRemoteCandidates = { publisher: [], subscriber: [] };
    this.remoteStreams = new Map(); // participant id -> MediaStream
    this.watchedStreams = new WeakSet(); // remote streams we listen to for removed tracks
    this.received = new Map(); // server track id -> {track, pid}: tracks the subscriber connection delivers
    // Publisher connection: offers go out one at a time; a change made while
    // one is outstanding is offered after its answer.
    this.cameraPublished = false;
    this.pubDirty = false;
    this.pubLoop = null; // the running negotiation (a promise)
    this.pubPending = null; // {id, resolve, reject} of the offer awaiting its answer
    this.pubSeq = 0;
    this.sources = new Map(); // own track id -> 'camera' | 'microphone' | 'screen'
    this.screen = null; // {stream, track, transceiver} while sharing
    this.screenStarting = false; // the browser's picker is open
    this.fatalError = null;
    this.pingTimer = 0;
    this.settingsSeq = 0;
    this.settingsIds = new Set(); // ids of our trackSettings messages
  }

  start() {
    chorus.session = this;
    chorus.state = 'connecting';
    chorus.room = this.room;
    chorus.name = this.name;
    chorus.participantId = null;
    chorus.participants = {};
    chorus.errors = [];
    chorus.layers = {};
    chorus.trackSettings = {};
    chorus.timings = { start: now() };
    recording.reset();
    chat.start((msg) => this.send(msg), this.room);
    appData.reset();
    setStatus('Connecting…');
    this.media = acquireMedia().then((m) => this.onMedia(m));
    this.connect();
  }

  // ------------------------------------------------ WebSocket

  connect() {
    const url = wsURL();
    this.url = url;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      this.fail(`Cannot reach the Chorus server at ${url}: ${errText(err)}.`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ended) return;
      this.opened = true;
      chorus.timings.wsOpen = now();
      setStatus('Joining…');
      const join = { type: 'join', room: this.room, name: this.name, data: true };
      if (urlToken) join.token = urlToken;
      this.send(join);
      this.pingTimer = setInterval(() => this.send({ type: 'ping' }), PING_INTERVAL_MS);
    };
    ws.onmessage = (ev) => {
      if (this.ended) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        console.warn('chorus: ignoring a message that is not JSON');
        return;
      }
      if (msg.type === 'error' && msg.target !== 'data') {
        // Noted at once, not in the queue: a close that follows at once is
        // the server ending the session, not a dropped connection.
        this.lastErrorAt = now();
      }
      if (msg.type === 'error' && msg.code === 'connection_failed') {
        // Noted now, not in the queue: the server closes the socket right
        // after, and the close must be explained by this error.
        this.fatalError = `The media connection failed (${msg.message || 'no details'}).`;
      }
      this.chain = this.chain
        .then(() => (this.ended ? undefined : this.handle(msg)))
        .catch((err) => {
          console.error('chorus: handling', msg.type, err);
          showBanner(`Something went wrong while handling "${msg.type}": ${errText(err)}`);
        });
    };
    ws.onclose = (ev) => {
      if (this.ended) return;
      if (this.fatalError) {
        this.fail(`${this.fatalError} The server ended the session.`);
        return;
      }
      if (this.opened && chorus.state === 'joined' && !chorus.rejoin && !(now() - this.lastErrorAt < 2000)) {
        // The socket dropped without the server ending the session (no
        // error just before): a network change or a server crash. Join
        // again, with backoff; a reconnect pulls only the chat it missed.
        chorus.rejoin = { room: this.room, name: this.name, attempt: 0 };
      }
      const why = this.opened
        ? `the connection closed unexpectedly (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`
        : 'the connection could not be opened';
      this.fail(`Cannot reach the Chorus server at ${url}: ${why}.`);
    };
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  // sendTrackSettings sends a trackSettings message with an id, so that an
  // error it causes can be recognised.
  sendTrackSettings(msg) {
    const id = `ts-${++this.settingsSeq}`;
    if (!this.send({ ...msg, id })) return false;
    this.settingsIds.add(id);
    return true;
  }

  // ------------------------------------------------ message handling

  async handle(msg) {
    switch (msg.type) {
      case 'joined':
        return this.onJoined(msg);
      case 'answer':
        if (msg.target === 'publisher') return this.onPublisherAnswer(msg);
        break;
      case 'offer':
        if (msg.target === 'subscriber') return this.onSubscriberOffer(msg);
        break;
      case 'candidate':
        return this.onRemoteCandidate(msg);
      case 'participantJoined':
        if (msg.participant) this.upsertParticipant(msg.participant);
        break;
      case 'participantLeft':
        if (msg.participant) this.removeParticipant(msg.participant.id);
        break;
      case 'trackPublished':
        if (msg.track) this.upsertTrack(msg.track);
        break;
      case 'trackUnpublished':
        if (msg.track) this.removeTrack(msg.track);
        break;
      case 'trackMuted':
        if (msg.track) this.upsertTrack(msg.track);
        break;
      case 'layerChanged':
        this.onLayerChanged(msg);
        break;
      case 'publisherLayers':
        return this.onPublisherLayers(msg);
      case 'recording':
        recording.set(msg.recorded);
        break;
      case 'recordingStarted':
      case 'recordingStopped':
        recording.settle(msg);
        break;
      case 'error':
        return this.onServerError(msg);
      case 'reconnect':
        return this.onReconnect(msg);
      case 'chat':
      case 'chatNotify':
      case 'chatHistory':
      case 'chatSent':
        chat.handle(msg);
        break;
      case 'pong':
        break;
      default:
        console.debug('chorus: ignoring message type', msg.type);
    }
    return undefined;
  }

  onJoined(msg) {
    chorus.rejoin = null; // back in: no more retries pending
    const self = msg.participant || {};
    chorus.participantId = self.id || null;
    chorus.state = 'joined';
    chorus.timings.joined = now();
    if (self.name !== undefined) chorus.name = self.name;
    setStatus('Connected');
    hideBanner();
    // The address bar becomes the link that rejoins this room as this person
    // (keeping the maxLayer test hook, if the page was opened with it).
    const params = { room: this.room, name: this.name };
    if (urlMaxLayer !== null) params.maxLayer = String(urlMaxLayer);
    if (urlToken) params.token = urlToken;
    this.iceServers = msg.iceServers || [];
    chorus.canPublish = msg.canPublish !== false;
    history.replaceState(null, '', pageURL(params));
    for (const p of msg.participants || []) this.upsertParticipant(p);
    recording.joined(msg);
    this.ensureSubscriber();
    updateControls();
    // Publishing waits for the camera prompt; it must not hold up the
    // message queue (server offers keep being answered meanwhile).
    if (!chorus.canPublish) return; // a viewer's token: receive only
    this.media.then(() => this.publish()).catch((err) => {
      console.error('chorus: publish', err);
      showBanner(`Could not publish your camera and microphone: ${errText(err)}`);
    });
  }

  // The server says which of our simulcast layers anyone receives: stop
  // encoding the others (saves upload and CPU) and resume them on request.
  async onPublisherLayers(msg) {
    const pc = chorus.pcs.publisher;
    const trackId = msg.track && msg.track.publisherTrackId;
    if (!pc || !trackId || !Array.isArray(msg.active)) return;
    const sender = pc.getSenders().find((s) => s.track && s.track.id === trackId);
    if (!sender) return;
    const params = sender.getParameters();
    if (!params.encodings || params.encodings.length < 2) return;
    let changed = false;
    for (const enc of params.encodings) {
      const i = SIMULCAST_ENCODINGS.findIndex((e) => e.rid === enc.rid);
      if (i < 0 || i >= msg.active.length) continue;
      const want = !!msg.active[i];
      if (enc.active !== want) {
        enc.active = want;
        changed = true;
      }
    }
    chorus.publisherLayers[trackId] = msg.active.slice();
    if (!changed) return;
    try {
      await sender.setParameters(params);
    } catch (err) {
      console.warn('chorus: could not change the sent layers:', errText(err));
    }
  }

  onServerError(msg) {
    const entry = { code: msg.code || 'unknown', message: msg.message || '', id: msg.id };
    chorus.errors.push(entry);
    const pending = this.pubPending;
    if (pending && msg.id && msg.id === pending.id) {
      // Our publisher offer was refused: the negotiation rolls it back.
      this.pubPending = null;
      pending.reject(new Error(`${entry.code}: ${entry.message}`));
    }
    const recordingRequest = recording.settle(msg);
    if (recordingRequest) {
      const what = recordingRequest === 'startRecording' ? 'start' : 'stop';
      showBanner(`Could not ${what} recording (${entry.code}): ${entry.message || 'no details'}`);
      return;
    }
    if (msg.target === 'data') {
      // A data message of ours was refused (data.js): the app's business.
      chorus.data.refused++;
      console.warn('chorus: data message refused:', entry.code, entry.message);
      return;
    }
    if (msg.id && this.settingsIds.has(msg.id) && entry.code === 'bad_request') {
      // trackSettings for a track that went away meanwhile: harmless.
      console.warn('chorus: trackSettings refused:', entry.message);
      return;
    }
    if (entry.code === 'unauthorized' || entry.code === 'not_permitted' && chorus.state !== 'joined') {
      showBanner(`Not allowed to join (${entry.code}): ${entry.message || 'no details'}. Ask for a new link.`);
      return;
    }
    showBanner(`Server error (${entry.code}): ${entry.message || 'no details'}`);
  }

  // The server is draining (a restart or a move to another node): leave
  // and join again after a short, randomised wait.
  onReconnect(msg) {
    chorus.reconnects = (chorus.reconnects || 0) + 1;
    showBanner(`The server is restarting (${msg.reason || 'draining'}); reconnecting…`);
    const again = { room: this.room, name: this.name, attempt: 0 };
    chorus.rejoin = again; // fail() keeps trying while the server restarts
    setTimeout(() => {
      if (chorus.rejoin === again && chorus.session === this) startCall(again.room, again.name);
    }, 1000 + Math.random() * 2000);
  }

  // ------------------------------------------------ participants and tracks

  upsertParticipant(p) {
    if (!p || !p.id || p.id === chorus.participantId) return;
    let entry = chorus.participants[p.id];
    if (!entry) {
      entry = { id: p.id, name: p.name || '', tracks: {} };
      chorus.participants[p.id] = entry;
    } else if (p.name !== undefined) {
      entry.name = p.name;
    }
    for (const t of p.tracks || []) entry.tracks[t.id] = { ...t };
    this.remoteTile(p.id);
    for (const tile of this.tilesOf(p.id)) tile.setName(entry.name); // camera and screens
    for (const t of p.tracks || []) this.placeTrack(t.id);
    this.refreshParticipant(p.id);
    recording.render(); // the badge's tooltip names the recorded
  }

  removeParticipant(id) {
    delete chorus.participants[id];
    this.remoteStreams.delete(id);
    for (const tile of this.tilesOf(id)) this.dropTile(tile);
    recording.render();
  }

  upsertTrack(track) {
    const pid = track.participantId;
    if (!pid || pid === chorus.participantId) return;
    let entry = chorus.participants[pid];
    if (!entry) {
      entry = { id: pid, name: '', tracks: {} };
      chorus.participants[pid] = entry;
      this.remoteTile(pid);
    }
    entry.tracks[track.id] = { ...entry.tracks[track.id], ...track };
    this.placeTrack(track.id); // in case its source changed
    this.refreshParticipant(pid);
  }

  removeTrack(track) {
    delete chorus.layers[track.id];
    delete chorus.trackSettings[track.id];
    // A screen share that ended goes away at once; the subscriber offer
    // that removes its media follows.
    const screenTile = tiles.get(`screen:${track.id}`);
    if (screenTile) this.dropTile(screenTile);
    const entry = chorus.participants[track.participantId];
    if (!entry) return;
    delete entry.tracks[track.id];
    this.refreshParticipant(track.participantId);
  }

  refreshParticipant(pid) {
    const entry = chorus.participants[pid];
    if (!entry) return;
    const tracks = Object.values(entry.tracks);
    for (const tile of this.tilesOf(pid)) {
      if (tile.screen) {
        const info = entry.tracks[tile.trackId];
        tile.setMuted(false, !!info && !!info.muted);
      }
    }
    const tile = tiles.get(pid);
    if (!tile) return;
    const audioMuted = tracks.some((t) => t.kind === 'audio' && t.muted);
    const videoMuted = tracks.some((t) => t.kind === 'video' && t.muted && !tiles.has(`screen:${t.id}`) && t.source !== SOURCE_SCREEN);
    tile.setMuted(audioMuted, videoMuted);
  }

  // remoteTile is the camera (and microphone) tile of a participant.
  remoteTile(pid) {
    let tile = tiles.get(pid);
    if (!tile) {
      const entry = chorus.participants[pid];
      tile = new Tile(pid, { name: entry ? entry.name : '' });
      tiles.set(pid, tile);
    }
    return tile;
  }

  // screenTile is the tile of one received screen share.
  screenTile(pid, trackId) {
    const key = `screen:${trackId}`;
    let tile = tiles.get(key);
    if (!tile) {
      const entry = chorus.participants[pid];
      tile = new Tile(key, { name: entry ? entry.name : '', participantId: pid, screen: true, trackId });
      tiles.set(key, tile);
    }
    return tile;
  }

  // tilesOf lists the remote tiles of a participant (camera and screens).
  tilesOf(pid) {
    return [...tiles.values()].filter((t) => !t.local && t.id === pid);
  }

  dropTile(tile) {
    tile.remove();
    if (tiles.get(tile.key) === tile) tiles.delete(tile.key);
  }

  // isScreen tells whether a received track is a screen share: the server
  // says so in the track's source. A server that does not report sources
  // sends "" (or nothing): then a participant's second live video is taken
  // for a screen, since its camera tile can show only one.
  isScreen(pid, track) {
    if (track.kind !== 'video') return false;
    const entry = chorus.participants[pid];
    const info = entry && entry.tracks[track.id];
    const source = (info && info.source) || '';
    if (source) return source === SOURCE_SCREEN;
    const screenTile = tiles.get(`screen:${track.id}`);
    if (screenTile && screenTile.hasTrack(track)) return true;
    const camera = tiles.get(pid);
    return !!camera && camera.videoTracks().some((t) => t !== track);
  }

  // placeTrack puts a received track into the tile it belongs to: the
  // participant's camera tile, or a screen tile of its own.
  placeTrack(trackId) {
    const r = this.received.get(trackId);
    if (!r) return;
    const { track, pid } = r;
    const want = this.isScreen(pid, track) ? this.screenTile(pid, trackId) : this.remoteTile(pid);
    for (const tile of this.tilesOf(pid)) {
      if (tile !== want && tile.hasTrack(track)) this.takeTrack(tile, track);
    }
    if (want.hasTrack(track)) return;
    want.addTrack(track);
    // A new track starts with the server's defaults: tell it our wishes now.
    if (track.kind === 'video') want.scheduleSettings(0);
    if (want.screen) layoutGrid();
  }

  // takeTrack removes a track from a tile. An empty screen tile goes; an
  // empty camera tile stays (with its name) while the participant is in
  // the room.
  takeTrack(tile, track) {
    const empty = tile.removeTrack(track);
    if (empty && (tile.screen || !chorus.participants[tile.id])) this.dropTile(tile);
  }

  // onRemoteTrackGone: the subscriber connection no longer delivers a track.
  onRemoteTrackGone(track) {
    const r = this.received.get(track.id);
    if (!r || r.track !== track) return;
    this.received.delete(track.id);
    for (const tile of this.tilesOf(r.pid)) {
      if (tile.hasTrack(track)) this.takeTrack(tile, track);
    }
  }

  // tileOfTrack finds the tile that shows a received track.
  tileOfTrack(trackId) {
    for (const tile of tiles.values()) {
      if (!tile.local && tile.stream && tile.stream.getTrackById(trackId)) return tile;
    }
    const screen = tiles.get(`screen:${trackId}`);
    if (screen) return screen;
    const pid = this.participantOfTrack(trackId);
    return pid ? tiles.get(pid) : undefined;
  }

  onLayerChanged(msg) {
    if (!msg.trackId || typeof msg.layer !== 'number') return;
    chorus.layers[msg.trackId] = { layer: msg.layer, reason: msg.reason || '', at: now() };
    const tile = this.tileOfTrack(msg.trackId);
    if (tile) tile.refreshLayerBadge();
  }

  participantOfTrack(trackId) {
    for (const p of Object.values(chorus.participants)) {
      if (p.tracks[trackId]) return p.id;
    }
    return null;
  }

  // ------------------------------------------------ peer connections

  newPC(target) {
    const config = { bundlePolicy: 'max-bundle', iceServers: this.iceServers || [] };
    if (urlRelayOnly) config.iceTransportPolicy = 'relay';
    const pc = new RTCPeerConnection(config);
    pc.onicecandidate = (ev) => {
      if (this.ended || !ev.candidate || !ev.candidate.candidate) return; // skip end-of-candidates
      const msg = { type: 'candidate', target, candidate: ev.candidate.toJSON() };
      if (target === 'subscriber' && !this.subscriberAnswered) {
        this.pendingLocalCandidates.push(msg);
      } else {
        this.send(msg);
      }
    };
    pc.onconnectionstatechange = () => {
      if (this.ended) return;
      const s = pc.connectionState;
      if (s === 'failed') {
        showBanner(`The ${target} media connection failed. Check that UDP traffic to the server is allowed.`);
      }
      this.updateStatus();
    };
    return pc;
  }

  updateStatus() {
    if (chorus.state !== 'joined') return;
    const states = Object.values(chorus.pcs).filter(Boolean).map((pc) => pc.connectionState);
    if (states.includes('failed')) setStatus('Media connection failed');
    else if (states.includes('disconnected')) setStatus('Reconnecting media…');
    else setStatus('Connected');
  }

  ensureSubscriber() {
    if (chorus.pcs.subscriber) return chorus.pcs.subscriber;
    const pc = this.newPC('subscriber');
    pc.ontrack = (ev) => this.onRemoteTrack(ev);
    appData.attach(pc);
    chorus.pcs.subscriber = pc;
    return pc;
  }

  onRemoteTrack(ev) {
    const track = ev.track;
    let stream = ev.streams && ev.streams[0];
    const pid = stream ? stream.id : this.participantOfTrack(track.id);
    if (!pid) {
      console.warn('chorus: a track arrived without a stream or a known owner', track.id);
      return;
    }
    if (!stream) {
      stream = this.remoteStreams.get(pid) || new MediaStream();
      stream.addTrack(track);
    }
    this.remoteStreams.set(pid, stream);
    if (!this.watchedStreams.has(stream)) {
      this.watchedStreams.add(stream);
      // Tracks that a subscriber offer removes leave the stream.
      stream.addEventListener('removetrack', (e) => {
        if (!this.ended && e.track) this.onRemoteTrackGone(e.track);
      });
    }
    const prev = this.received.get(track.id);
    if (prev && prev.track !== track) this.onRemoteTrackGone(prev.track);
    this.received.set(track.id, { track, pid });
    this.remoteTile(pid); // the participant's tile exists even if only a screen arrives
    this.placeTrack(track.id);
    const refresh = () => {
      const tile = this.tileOfTrack(track.id);
      if (tile) tile.refresh();
    };
    track.addEventListener('ended', () => {
      const tile = this.tileOfTrack(track.id);
      if (tile && tile.screen) this.onRemoteTrackGone(track); // a screen tile has nothing else to show
      else refresh();
    });
    track.addEventListener('unmute', refresh);
    this.refreshParticipant(pid);
  }

  async onSubscriberOffer(msg) {
    const pc = this.ensureSubscriber();
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    await this.flushRemoteCandidates('subscriber');
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (this.ended) return;
    this.send({ type: 'answer', target: 'subscriber', sdp: pc.localDescription.sdp });
    if (!this.subscriberAnswered) {
      this.subscriberAnswered = true;
      for (const c of this.pendingLocalCandidates) this.send(c);
      this.pendingLocalCandidates = [];
    }
  }

  // onPublisherAnswer applies the answer to our outstanding publisher offer
  // (the first one and every re-offer alike) and lets the negotiation go on.
  async onPublisherAnswer(msg) {
    const pc = chorus.pcs.publisher;
    const pending = this.pubPending;
    if (pending && msg.id && msg.id !== pending.id) {
      console.warn('chorus: ignoring a publisher answer to an offer no longer outstanding', msg.id);
      return;
    }
    this.pubPending = null;
    if (!pc || pc.signalingState !== 'have-local-offer') {
      console.warn('chorus: publisher answer without an outstanding offer');
      if (pending) pending.reject(new Error('answer without an outstanding offer'));
      return;
    }
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      await this.flushRemoteCandidates('publisher');
    } catch (err) {
      if (pending) pending.reject(err);
      throw err;
    }
    if (chorus.timings.published === undefined) chorus.timings.published = now();
    if (pending) pending.resolve();
  }

  async onRemoteCandidate(msg) {
    const target = msg.target === 'publisher' ? 'publisher' : 'subscriber';
    const pc = chorus.pcs[target];
    if (!msg.candidate) return;
    if (!pc || !pc.remoteDescription) {
      this.pendingRemoteCandidates[target].push(msg.candidate);
      return;
    }
    await pc.addIceCandidate(msg.candidate).catch((err) => console.warn('chorus: addIceCandidate', err));
  }

  async flushRemoteCandidates(target) {
    const pc = chorus.pcs[target];
    const list = this.pendingRemoteCandidates[target];
    this.pendingRemoteCandidates[target] = [];
    for (const c of list) {
      await pc.addIceCandidate(c).catch((err) => console.warn('chorus: addIceCandidate', err));
    }
  }

  // ------------------------------------------------ publishing

  onMedia({ stream, problem }) {
    if (this.ended) {
      if (stream) stream.getTracks().forEach((t) => t.stop());
      return;
    }
    chorus.localStream = stream;
    chorus.mediaError = problem;
    showNotice(problem || '');
    const audio = stream ? stream.getAudioTracks() : [];
    const video = stream ? stream.getVideoTracks() : [];
    for (const t of audio) t.enabled = chorus.micEnabled;
    for (const t of video) t.enabled = chorus.camEnabled;
    updateControls();
    if (stream) {
      let tile = tiles.get('local');
      if (!tile) {
        tile = new Tile('local', { local: true, name: this.name });
        tiles.set('local', tile);
        // Keep our own tile first.
        ui.grid.prepend(tile.el);
      }
      tile.attach(stream);
      tile.setMuted(!chorus.micEnabled && audio.length > 0, !chorus.camEnabled && video.length > 0);
    }
  }

  ensurePublisher() {
    if (!chorus.pcs.publisher) chorus.pcs.publisher = this.newPC('publisher');
    return chorus.pcs.publisher;
  }

  // publish sends our camera and microphone (once).
  async publish() {
    const stream = chorus.localStream;
    if (this.ended || this.cameraPublished || !stream || stream.getTracks().length === 0) return;
    this.cameraPublished = true;
    const pc = this.ensurePublisher();
    for (const track of stream.getTracks()) {
      this.sources.set(track.id, track.kind === 'audio' ? SOURCE_MICROPHONE : SOURCE_CAMERA);
      const init = { direction: 'sendonly', streams: [stream] };
      if (track.kind === 'video') {
        try {
          pc.addTransceiver(track, { ...init, sendEncodings: SIMULCAST_ENCODINGS.map((e) => ({ ...e })) });
          continue;
        } catch (err) {
          console.warn('chorus: simulcast unavailable, sending a single layer:', errText(err));
        }
      }
      pc.addTransceiver(track, init);
    }
    // Tell the others about tracks that start out muted (the server keeps
    // this for tracks that have not arrived yet).
    for (const t of stream.getTracks()) {
      if (!t.enabled) this.send({ type: 'mute', trackId: t.id, muted: true });
    }
    await this.negotiatePublisher();
  }

  // publisherSources maps every track we send to what it shows.
  publisherSources() {
    const out = {};
    const pc = chorus.pcs.publisher;
    if (!pc) return out;
    for (const tr of pc.getTransceivers()) {
      const t = tr.sender.track;
      if (!t || tr.currentDirection === 'stopped' || (tr.direction !== 'sendonly' && tr.direction !== 'sendrecv')) continue;
      out[t.id] = this.sources.get(t.id) || (t.kind === 'audio' ? SOURCE_MICROPHONE : SOURCE_CAMERA);
    }
    return out;
  }

  // negotiatePublisher (re-)offers the publisher connection's current
  // tracks. Offers go out one at a time: a call made while an offer awaits
  // its answer is served by one more offer after that answer. The promise
  // resolves to true once our changes are negotiated, to false if the last
  // offer was refused (it is rolled back, and the error is on the banner).
  negotiatePublisher() {
    this.pubDirty = true;
    // Started in a microtask, so that the loop's end (which clears pubLoop)
    // always comes after this assignment.
    if (!this.pubLoop) this.pubLoop = Promise.resolve().then(() => this.runPublisherNegotiation());
    return this.pubLoop;
  }

  async runPublisherNegotiation() {
    let ok = false;
    try {
      while (this.pubDirty && !this.ended) {
        this.pubDirty = false;
        const pc = chorus.pcs.publisher;
        if (!pc || pc.signalingState === 'closed') return false;
        try {
          await this.offerPublisher(pc);
          ok = true;
        } catch (err) {
          ok = false;
          if (this.ended) return false;
          console.warn('chorus: publisher negotiation failed:', errText(err));
          if (pc.signalingState === 'have-local-offer') {
            await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
          }
          if (!chorus.banner) showBanner(`Could not update what you send: ${errText(err)}`);
        }
      }
    } finally {
      this.pubLoop = null;
    }
    return ok && !this.ended;
  }

  // offerPublisher sends one publisher offer and waits for its answer.
  async offerPublisher(pc) {
    const offer = await pc.createOffer();
    // Ask for NACKs on audio too: the server then requests lost audio
    // packets again on top of RED. Browsers do not offer it by themselves;
    // if this browser refuses the change, the offer goes as it was.
    const munged = withAudioNack(offer.sdp);
    try {
      await pc.setLocalDescription(munged === offer.sdp ? offer : { type: 'offer', sdp: munged });
    } catch (err) {
      if (munged === offer.sdp) throw err;
      await pc.setLocalDescription(offer);
    }
    if (this.ended) return;
    const id = `pub-${++this.pubSeq}`;
    const answered = new Promise((resolve, reject) => { this.pubPending = { id, resolve, reject }; });
    const msg = { type: 'offer', id, target: 'publisher', sdp: pc.localDescription.sdp, sources: this.publisherSources() };
    if (!this.send(msg)) {
      this.pubPending = null;
      throw new Error('the connection to the server is closed');
    }
    await answered;
  }

  // ------------------------------------------------ screen sharing

  // startScreenShare asks the browser for a screen, window or tab and sends
  // it as one more video track (a single layer: screens are read, not
  // scaled). It resolves to whether sharing started.
  async startScreenShare() {
    if (this.ended || this.screen || this.screenStarting || chorus.state !== 'joined') return false;
    if (!screenShareSupported()) {
      showNotice('Screen sharing is not available in this browser.');
      return false;
    }
    this.screenStarting = true;
    updateControls();
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (err) {
      this.screenStarting = false;
      updateControls();
      // NotAllowedError: the user closed the picker (or the page may not
      // capture); nothing to tell.
      if (!this.ended && !(err && err.name === 'NotAllowedError')) {
        showNotice(`Could not share your screen: ${errText(err)}.`);
      }
      return false;
    }
    this.screenStarting = false;
    const track = stream.getVideoTracks()[0];
    for (const t of stream.getAudioTracks()) { // asked for none
      t.stop();
      stream.removeTrack(t);
    }
    if (this.ended || !track || this.screen) {
      stream.getTracks().forEach((t) => t.stop());
      updateControls();
      return false;
    }
    try { track.contentHint = 'detail'; } catch { /* not supported */ }
    const pc = this.ensurePublisher();
    // A transceiver of its own, single layer; after sharing stops it stays
    // inactive (removeTrack), and the next share gets a new one.
    const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    this.screen = { stream, track, transceiver };
    this.sources.set(track.id, SOURCE_SCREEN);
    chorus.screenSharing = true;
    chorus.screenStream = stream;
    // The browser's own "Stop sharing" ends the track.
    track.addEventListener('ended', () => {
      if (this.screen && this.screen.track === track) this.stopScreenShare();
    });
    this.showLocalScreen(stream);
    updateControls();
    if (await this.negotiatePublisher()) return true;
    // The server refused the offer (a rollback keeps the transceiver):
    // stop, so that we do not show a share nobody receives.
    if (this.screen && this.screen.track === track) await this.stopScreenShare();
    return false;
  }

  // stopScreenShare stops sending the screen and re-offers without it.
  async stopScreenShare() {
    const share = this.screen;
    if (!share) return;
    this.screen = null;
    this.sources.delete(share.track.id);
    share.stream.getTracks().forEach((t) => t.stop());
    chorus.screenSharing = false;
    chorus.screenStream = null;
    const tile = tiles.get('local-screen');
    if (tile) {
      tile.remove();
      tiles.delete('local-screen');
    }
    updateControls();
    const pc = chorus.pcs.publisher;
    if (this.ended || !pc || pc.signalingState === 'closed') return;
    try {
      pc.removeTrack(share.transceiver.sender);
    } catch (err) {
      console.warn('chorus: removeTrack:', errText(err));
    }
    await this.negotiatePublisher();
  }

  showLocalScreen(stream) {
    let tile = tiles.get('local-screen');
    if (!tile) {
      tile = new Tile('local-screen', { local: true, name: this.name, participantId: 'local', screen: true });
      tiles.set('local-screen', tile);
      // Next to our camera tile, which stays first.
      const cam = tiles.get('local');
      if (cam) cam.el.after(tile.el);
      else ui.grid.prepend(tile.el);
    }
    tile.attach(stream);
  }

  // ------------------------------------------------ ending

  leave() {
    if (this.ended) return;
    this.send({ type: 'leave' });
    this.teardown();
    chorus.state = 'left';
  }

  fail(text) {
    if (this.ended) return;
    this.teardown();
    chorus.state = 'failed';
    setStatus('Disconnected');
    const again = chorus.rejoin;
    if (again && again.attempt < REJOIN_ATTEMPTS) {
      // after a drain: the server (or another node) takes us back soon
      again.attempt += 1;
      const wait = Math.min(30000, 1000 * 2 ** again.attempt) * (0.5 + Math.random() / 2);
      showBanner(`${text} Reconnecting in ${Math.round(wait / 1000)} s…`);
      setTimeout(() => {
        if (chorus.rejoin === again) startCall(again.room, again.name);
      }, wait);
      return;
    }
    chorus.rejoin = null;
    showBanner(text, { retry: true });
  }

  teardown() {
    this.ended = true;
    clearInterval(this.pingTimer);
    if (this.ws) {
      this.ws.onclose = null;
      try { this.ws.close(1000, 'leaving'); } catch { /* already closed */ }
    }
    for (const k of ['publisher', 'subscriber']) {
      if (chorus.pcs[k]) chorus.pcs[k].close();
      chorus.pcs[k] = null;
    }
    if (chorus.localStream) chorus.localStream.getTracks().forEach((t) => t.stop());
    chorus.localStream = null;
    if (this.screen) this.screen.stream.getTracks().forEach((t) => t.stop());
    this.screen = null;
    chorus.screenSharing = false;
    chorus.screenStream = null;
    if (this.pubPending) {
      this.pubPending.reject(new Error('the session ended'));
      this.pubPending = null;
    }
    removeAllTiles();
    chorus.participants = {};
    recording.reset();
    if (chorus.session === this) chat.detach();
    if (chorus.session === this) appData.reset();
    if (chorus.session === this) chorus.session = null;
    updateControls();
  }
}

// ---------------------------------------------------------------- controls

function updateControls() {
  const s = chorus.localStream;
  const hasAudio = !!s && s.getAudioTracks().length > 0;
  const hasVideo = !!s && s.getVideoTracks().length > 0;
  ui.micButton.disabled = !hasAudio;
  ui.camButton.disabled = !hasVideo;
  ui.micButton.title = hasAudio ? '' : 'No microphone';
  ui.camButton.title = hasVideo ? '' : 'No camera';
  ui.micButton.querySelector('.ctl-label').textContent = chorus.micEnabled ? 'Mute' : 'Unmute';
  ui.camButton.querySelector('.ctl-label').textContent = chorus.camEnabled ? 'Stop camera' : 'Start camera';
  ui.micButton.setAttribute('aria-pressed', String(!chorus.micEnabled));
  ui.camButton.setAttribute('aria-pressed', String(!chorus.camEnabled));
  ui.micButton.classList.toggle('off', !chorus.micEnabled);
  ui.camButton.classList.toggle('off', !chorus.camEnabled);

  const session = chorus.session;
  const supported = screenShareSupported();
  const sharing = chorus.screenSharing;
  ui.shareButton.disabled = !sharing && (!supported || !session || chorus.state !== 'joined' || session.screenStarting);
  ui.shareButton.title = supported ? '' : 'Screen sharing is not available in this browser';
  ui.shareButton.querySelector('.ctl-label').textContent = sharing ? 'Stop sharing' : 'Share screen';
  ui.shareButton.setAttribute('aria-pressed', String(sharing));
  ui.shareButton.classList.toggle('on', sharing);
}

function screenShareSupported() {
  return !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
}

function setLocalTracks(kind, enabled) {
  const s = chorus.localStream;
  if (!s) return;
  const tracks = kind === 'audio' ? s.getAudioTracks() : s.getVideoTracks();
  for (const t of tracks) {
    t.enabled = enabled;
    if (chorus.session && chorus.pcs.publisher) {
      chorus.session.send({ type: 'mute', trackId: t.id, muted: !enabled });
    }
  }
  const tile = tiles.get('local');
  if (tile) tile.setMuted(!chorus.micEnabled, !chorus.camEnabled);
  updateControls();
}

ui.micButton.addEventListener('click', () => {
  chorus.micEnabled = !chorus.micEnabled;
  setLocalTracks('audio', chorus.micEnabled);
});

ui.camButton.addEventListener('click', () => {
  chorus.camEnabled = !chorus.camEnabled;
  setLocalTracks('video', chorus.camEnabled);
});

ui.shareButton.addEventListener('click', () => {
  const session = chorus.session;
  if (!session) return;
  const action = chorus.screenSharing ? session.stopScreenShare() : session.startScreenShare();
  action.catch((err) => {
    console.error('chorus: screen sharing', err);
    showBanner(`Screen sharing failed: ${errText(err)}`);
  });
});

ui.recordButton.addEventListener('click', () => {
  const session = chorus.session;
  if (session && !session.ended && chorus.state === 'joined') recording.toggle((msg) => session.send(msg));
});

ui.leaveButton.addEventListener('click', () => {
  const room = chorus.room;
  if (chorus.session) chorus.session.leave();
  chorus.state = 'left';
  hideBanner();
  showNotice('');
  showJoin({ room, name: chorus.name });
  history.replaceState(null, '', room ? pageURL({ room }) : location.pathname);
});

ui.copyLink.addEventListener('click', async () => {
  // The invitation names the room but not us: whoever opens it picks a name.
  const link = pageURL({ room: chorus.room });
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(link);
      ok = true;
    }
  } catch { /* fall back below */ }
  if (!ok) {
    const ta = document.createElement('textarea');
    ta.value = link;
    ta.setAttribute('readonly', '');
    ta.style.position = 'fixed';
    ta.style.opacity = '0';
    document.body.appendChild(ta);
    ta.select();
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    ta.remove();
  }
  if (!ok) {
    window.prompt('Copy this link:', link);
    return;
  }
  const label = ui.copyLink.textContent;
  ui.copyLink.textContent = 'Link copied';
  setTimeout(() => { ui.copyLink.textContent = label; }, 1500);
});

ui.bannerDismiss.addEventListener('click', hideBanner);
ui.noticeDismiss.addEventListener('click', () => showNotice(''));
ui.bannerRetry.addEventListener('click', () => {
  hideBanner();
  if (chorus.room) startCall(chorus.room, chorus.name);
});

// ---------------------------------------------------------------- views

function showJoin({ room = '', name = '' } = {}) {
  ui.callView.hidden = true;
  ui.joinView.hidden = false;
  ui.roomInput.value = room || ui.roomInput.value || randomRoom();
  ui.nameInput.value = name || ui.nameInput.value || loadSavedName();
  document.title = 'Chorus';
  (ui.nameInput.value ? ui.roomInput : ui.nameInput).focus();
}

function startCall(room, name) {
  if (chorus.session) chorus.session.leave();
  saveName(name);
  chorus.micEnabled = true;
  chorus.camEnabled = true;
  updateControls();
  ui.joinView.hidden = true;
  ui.callView.hidden = false;
  ui.roomLabel.textContent = room;
  document.title = `${room} · Chorus`;
  showNotice('');
  new Session(room, name).start();
}

function validate(room, name) {
  if (!room) return 'Enter a room name.';
  if (!name) return 'Enter your name.';
  if (byteLength(room) > MAX_ROOM_BYTES) return `The room name is too long (at most ${MAX_ROOM_BYTES} bytes).`;
  if (byteLength(name) > MAX_NAME_BYTES) return `Your name is too long (at most ${MAX_NAME_BYTES} bytes).`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\ufffd]/.test(room + name)) return 'Room and name must be printable text.';
  return null;
}

ui.joinForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const room = ui.roomInput.value.trim();
  const name = ui.nameInput.value.trim();
  const problem = validate(room, name);
  ui.joinError.textContent = problem || '';
  ui.joinError.hidden = !problem;
  if (problem) return;
  hideBanner();
  startCall(room, name);
});

window.addEventListener('pagehide', () => {
  if (chorus.session) chorus.session.leave();
});

function init() {
  const params = new URLSearchParams(location.search);
  const claims = urlToken ? tokenClaims(urlToken) : {};
  const room = (params.get('room') || claims.room || '').trim();
  const name = (params.get('name') || claims.name || claims.sub || '').trim();
  chorus.maxLayerOverride = urlMaxLayer;
  if (room && name && !validate(room, name)) {
    startCall(room, name);
  } else {
    showJoin({ room, name });
  }
}

init();

// withAudioNack adds "a=rtcp-fb:<pt> nack" for Opus and RED in every audio
// section of an SDP that lacks it.
function withAudioNack(sdp) {
  const sections = sdp.split(/\r\n(?=m=)/);
  return sections.map((sec) => {
    if (!sec.startsWith('m=audio')) return sec;
    const lines = sec.split('\r\n');
    const out = [];
    for (const l of lines) {
      out.push(l);
      const m = /^a=rtpmap:(\d+) (opus|red)\/48000/i.exec(l);
      if (m && !lines.includes(`a=rtcp-fb:${m[1]} nack`)) out.push(`a=rtcp-fb:${m[1]} nack`);
    }
    return out.join('\r\n');
  }).join('\r\n');
}
