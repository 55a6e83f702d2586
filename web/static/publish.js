// Local media and publishing for the Chorus browser client: the camera and
// microphone we ask for, the publisher connection's negotiation (simulcast
// camera, sources, one offer at a time), screen sharing, and the state of
// the call controls.

import {
  SIMULCAST_ENCODINGS, SOURCE_SCREEN, SOURCE_CAMERA, SOURCE_MICROPHONE,
  ui, chorus, errText, showBanner, showNotice, tiles,
} from './state.js';
import { Tile } from './tiles.js';

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

// PublishingSession is the publishing half of a Session (session.js),
// which extends it: our camera, microphone and screen on the publisher
// connection. Its methods use the Session's fields and its send(),
// newPC() and ended.
export class PublishingSession {
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

export { acquireMedia, updateControls };
