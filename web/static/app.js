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

import {
  MAX_ROOM_BYTES, MAX_NAME_BYTES, urlMaxLayer, urlToken, tokenClaims, ui, chorus, recording,
  byteLength, pageURL, errText, randomRoom, loadSavedName, showBanner, hideBanner, showNotice, tiles,
} from './state.js';
import { updateControls } from './publish.js';
import { startCall } from './session.js';

// ---------------------------------------------------------------- controls

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
