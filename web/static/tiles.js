// Tiles of the Chorus browser client: one per camera (remote participant or
// our own) and per screen share, the grid they are laid out in, and the
// simulcast layer and pause wishes that follow each remote tile's size and
// visibility (trackSettings).

import {
  SOURCE_SCREEN, SOURCE_CAMERA, ui, chorus, recording, now, tiles,
} from './state.js';

const LAYER_DEBOUNCE_MS = 300; // trackSettings follow tile size changes after this quiet time
// What the server assumes for a track until we say otherwise.
const DEFAULT_TRACK_SETTINGS = Object.freeze({ maxLayer: 2, paused: false });
const LAYER_LABELS = { '-1': 'paused', 0: 'LD', 1: 'SD', 2: 'HD' };
const LAYER_RIDS = { 0: 'q', 1: 'h', 2: 'f' };

// layerForHeight picks the layer for a tile of this height in CSS pixels:
// up to 240 device pixels the lowest (1/4 of 720p), up to 480 the middle
// one, above that the full picture.
function layerForHeight(cssHeight) {
  const px = cssHeight * (window.devicePixelRatio || 1);
  if (px <= 240) return 0;
  if (px <= 480) return 1;
  return 2;
}

// ---------------------------------------------------------------- tiles

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

export { Tile, layoutGrid, removeAllTiles };
