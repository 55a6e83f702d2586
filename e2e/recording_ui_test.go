package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chorus-sfu/chorus/internal/server"
)

// startRecordingServer starts a server that records into a temporary
// folder; clientRecording lets participants start and stop recordings.
func startRecordingServer(t *testing.T, w *testWriter, clientRecording bool) *testServer {
	t.Helper()
	return startServerWith(t, w, server.Config{
		Recording: server.RecordingConfig{Dir: t.TempDir(), ClientRecording: clientRecording}})
}

// recordingAPI starts or stops (path "stop") recording a room through the
// server's recordings HTTP API.
func recordingAPI(t *testing.T, s *testServer, path, room string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"room": room})
	u := s.URL() + "api/recordings"
	if path != "" {
		u += "/" + path
	}
	resp, err := http.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s %s: %s %s", u, body, resp.Status, reply)
	}
}

// recordingStateJS reads the page's recording state: window.chorus and
// what the page shows.
const recordingStateJS = `(() => {
  const c = window.chorus || {};
  const shown = (el) => !!el && !el.hidden && !el.closest('[hidden]');
  const badge = document.getElementById('rec-badge');
  const button = document.getElementById('record-button');
  const banner = document.getElementById('banner');
  const who = (t) => t.classList.contains('local') ? 'local' : (t.dataset.participantId || '');
  const tiles = [...document.querySelectorAll('#grid .tile:not(.screen)')];
  return {
    state: c.state || '', participantId: c.participantId || '',
    published: !!(c.timings && c.timings.published !== undefined),
    recording: c.recording || [], canRecord: !!c.canRecord,
    badge: shown(badge), badgeText: badge.textContent.trim(), badgeTitle: badge.title,
    badgeColor: getComputedStyle(badge).backgroundColor,
    button: shown(button), buttonLabel: button.querySelector('.ctl-label').textContent,
    buttonDisabled: button.disabled,
    tiles: tiles.map(who),
    recTiles: tiles.filter((t) => shown(t.querySelector('.rec-mark'))).map(who),
    banner: shown(banner) ? document.getElementById('banner-text').textContent : '',
  };
})()`

type recordingState struct {
	State          string   `json:"state"`
	ParticipantID  string   `json:"participantId"`
	Published      bool     `json:"published"`
	Recording      []string `json:"recording"`
	CanRecord      bool     `json:"canRecord"`
	Badge          bool     `json:"badge"`
	BadgeText      string   `json:"badgeText"`
	BadgeTitle     string   `json:"badgeTitle"`
	BadgeColor     string   `json:"badgeColor"`
	Button         bool     `json:"button"`
	ButtonLabel    string   `json:"buttonLabel"`
	ButtonDisabled bool     `json:"buttonDisabled"`
	Tiles          []string `json:"tiles"`
	RecTiles       []string `json:"recTiles"`
	Banner         string   `json:"banner"`
}

func (s recordingState) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// records: the page lists exactly these participants as recorded.
func (s recordingState) records(ids ...string) bool {
	return len(s.Recording) == len(ids) && !slices.ContainsFunc(ids, func(id string) bool { return !slices.Contains(s.Recording, id) })
}

// marked: the page shows REC on exactly the tiles of these participants
// ("local" for its own).
func (s recordingState) marked(ids ...string) bool {
	return len(s.RecTiles) == len(ids) && !slices.ContainsFunc(ids, func(id string) bool { return !slices.Contains(s.RecTiles, id) })
}

func (tb *tab) waitRecording(timeout time.Duration, what string, cond func(recordingState) bool) recordingState {
	tb.t.Helper()
	return poll(tb, time.Now().Add(timeout), what, func() (recordingState, error) {
		return evaluate[recordingState](tb, recordingStateJS)
	}, cond)
}

const recBadgeRed = "rgb(229, 72, 77)" // --danger in style.css

// TestBrowserRecording: participants see a red REC badge while the server
// records their room, whoever starts it, and a participant allowed to
// control recording gets a Record button.
func TestBrowserRecording(t *testing.T) {
	w := newTestWriter(t)
	b := newBrowser(t, w)

	t.Run("badge and button", func(t *testing.T) {
		s := startRecordingServer(t, w, true)
		const room = "recorded"
		j := joinPair(t, b, s, room)
		tabs := []*tab{j.a, j.b}
		ids := map[*tab]string{j.a: j.aID, j.b: j.bID}
		others := map[*tab]string{j.a: j.bID, j.b: j.aID}

		for _, tb := range tabs {
			st := tb.waitRecording(uiDeadline, "the Record button, no badge", func(s recordingState) bool {
				return s.CanRecord && s.Button && s.ButtonLabel == "Record" && !s.ButtonDisabled
			})
			if st.Badge || len(st.Recording) != 0 || len(st.RecTiles) != 0 {
				t.Errorf("tab %s: recording shown before anyone records: %s", tb.name, st)
			}
		}

		// Started through the server's recordings API.
		recordingAPI(t, s, "", room)
		for _, tb := range tabs {
			st := tb.waitRecording(mediaDeadline, "the REC badge on both participants", func(s recordingState) bool {
				return s.Badge && s.records(j.aID, j.bID) && s.marked("local", others[tb])
			})
			if st.BadgeText != "● REC" || st.BadgeColor != recBadgeRed {
				t.Errorf("tab %s: badge %q in %s, want \"● REC\" in %s", tb.name, st.BadgeText, st.BadgeColor, recBadgeRed)
			}
			if !strings.HasPrefix(st.BadgeTitle, "This room is being recorded") ||
				!strings.Contains(st.BadgeTitle, "you") || !strings.Contains(st.BadgeTitle, map[*tab]string{j.a: "b", j.b: "a"}[tb]) {
				t.Errorf("tab %s: badge title %q does not say who is recorded", tb.name, st.BadgeTitle)
			}
			if st.ButtonLabel != "Stop recording" {
				t.Errorf("tab %s: button %q while recorded, want Stop recording", tb.name, st.ButtonLabel)
			}
			if st.ParticipantID != ids[tb] {
				t.Errorf("tab %s: participant %q, want %q", tb.name, st.ParticipantID, ids[tb])
			}
		}
		recordingAPI(t, s, "stop", room)
		for _, tb := range tabs {
			tb.waitRecording(mediaDeadline, "the REC badge to go", func(s recordingState) bool {
				return !s.Badge && len(s.Recording) == 0 && len(s.RecTiles) == 0 && s.ButtonLabel == "Record"
			})
		}

		// Started and stopped from the page; a participant who joins
		// meanwhile is told at once (without camera or microphone, so that
		// nothing changes what is recorded: only the notice at its join can
		// show it the badge).
		j.a.click("record-button")
		for _, tb := range tabs {
			tb.waitRecording(mediaDeadline, "the REC badge after a clicked Record", func(s recordingState) bool {
				return s.Badge && s.records(j.aID, j.bID) && s.ButtonLabel == "Stop recording" && !s.ButtonDisabled
			})
		}
		c := b.newTab("c", denyMediaJS)
		c.navigate(roomURL(s, room, "c"))
		st := c.waitRecording(uiDeadline, "the late joiner's REC badge", func(s recordingState) bool {
			return s.State == "joined" && s.Badge && s.records(j.aID, j.bID) && s.marked(j.aID, j.bID)
		})
		if !st.CanRecord || !st.Button {
			t.Errorf("tab c: no Record button: %s", st)
		}
		j.b.click("record-button")
		for _, tb := range []*tab{j.a, j.b, c} {
			st := tb.waitRecording(mediaDeadline, "the REC badge to go after Stop recording", func(s recordingState) bool {
				return !s.Badge && len(s.Recording) == 0 && len(s.RecTiles) == 0 && s.ButtonLabel == "Record"
			})
			if st.Banner != "" {
				t.Errorf("tab %s: banner %q", tb.name, st.Banner)
			}
		}
	})

	t.Run("notice without control", func(t *testing.T) {
		s := startRecordingServer(t, w, false)
		const room = "watched"
		tb := b.newTab("d")
		tb.navigate(roomURL(s, room, "d"))
		st := tb.waitRecording(mediaDeadline, "joined and publishing", func(s recordingState) bool {
			return s.State == "joined" && s.Published
		})
		if st.CanRecord || st.Button {
			t.Errorf("Record offered although the server does not allow it: %s", st)
		}
		recordingAPI(t, s, "", room)
		tb.waitRecording(mediaDeadline, "the REC badge", func(s recordingState) bool {
			return s.Badge && s.records(st.ParticipantID) && s.marked("local") && !s.Button
		})
		// The server refuses a request the page would not send.
		tb.exec(`window.chorus.session.send({type: 'startRecording', id: 'forbidden'})`)
		tb.waitRecording(uiDeadline, "the refusal", func(s recordingState) bool {
			return strings.Contains(s.Banner, "not_permitted")
		})
		recordingAPI(t, s, "stop", room)
		tb.waitRecording(mediaDeadline, "the REC badge to go", func(s recordingState) bool {
			return !s.Badge && len(s.Recording) == 0 && len(s.RecTiles) == 0
		})
	})
}
