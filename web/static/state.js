// Shared state of the Chorus browser client (see app.js for an overview):
// constants, URL parameters, the DOM elements (ui), the public state on
// window.chorus, the recording, chat and app data helpers, the tiles on
// screen, and small helpers. The other modules of the client import what
// they need from here; this one imports only recording.js, chat.js and
// data.js.

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
const SOURCE_SCREEN = 'screen';
const SOURCE_CAMERA = 'camera';
const SOURCE_MICROPHONE = 'microphone';

const $ = (id) => document.getElementById(id);


// The maxLayer test hook from the page's URL (see the top of app.js).
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

// setMaxLayerOverride forces a maximum layer (0..2) for all received video,
// or with null (or anything else) returns to sizing by the tiles. The new
// wishes are sent at once.
function setMaxLayerOverride(n) {
  chorus.maxLayerOverride = parseLayer(n);
  for (const tile of tiles.values()) tile.flushSettings();
  return chorus.maxLayerOverride;
}

export {
  MAX_ROOM_BYTES, MAX_NAME_BYTES, PING_INTERVAL_MS, SIMULCAST_ENCODINGS,
  SOURCE_SCREEN, SOURCE_CAMERA, SOURCE_MICROPHONE, REJOIN_ATTEMPTS,
  urlMaxLayer, urlToken, urlRelayOnly, tokenClaims, ui, chorus,
  recording, chat, appData,
  byteLength, wsURL, pageURL, errText, now, randomRoom, loadSavedName, saveName,
  showBanner, hideBanner, showNotice, setStatus,
  tiles,
};
