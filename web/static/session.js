// The signaling session of the Chorus browser client: the WebSocket to the
// server, its messages, the remote participants and their tracks, and the
// two peer connections. Publishing and screen sharing are in publish.js
// (PublishingSession, which Session extends).

import {
  PING_INTERVAL_MS, SIMULCAST_ENCODINGS, SOURCE_SCREEN, REJOIN_ATTEMPTS,
  urlMaxLayer, urlToken, urlRelayOnly, ui, chorus, recording, chat, appData,
  wsURL, pageURL, errText, now, saveName, showBanner, hideBanner, showNotice, setStatus, tiles,
} from './state.js';
import { Tile, layoutGrid, removeAllTiles } from './tiles.js';
import { PublishingSession, acquireMedia, updateControls } from './publish.js';

// ---------------------------------------------------------------- session

export class Session extends PublishingSession {
  constructor(room, name) {
    super();
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

// ---------------------------------------------------------------- starting

// startCall leaves the current session, if any, and joins room as name.
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

export { startCall };
