package signaling_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/sfu"
	"github.com/chorus-sfu/chorus/signaling"
)

// FuzzWHIPOffer posts arbitrary bodies to WHIP and WHEP: the server answers
// every one with a status (never a panic, never a 5xx for bad input), and
// a session it accepts can be deleted.
func FuzzWHIPOffer(f *testing.F) {
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		f.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		f.Fatal(err)
	}
	_ = pc.Close()
	f.Add(offer.SDP, true)
	f.Add(strings.Replace(offer.SDP, "m=video 9", "m=video -1", 1), true)
	f.Add("v=0\r\n", false)

	sf, err := sfu.New(sfu.Config{UDPIP: "127.0.0.1", Logger: testLogger()})
	if err != nil {
		f.Fatal(err)
	}
	defer sf.Close()
	sig := signaling.NewServer(sf, signaling.Config{Logger: testLogger(), Limits: signaling.Limits{MaxTracksPerParticipant: 4}})
	defer sig.Close()
	mux := http.NewServeMux()
	sig.Register(mux)
	f.Fuzz(func(t *testing.T, body string, whip bool) {
		path := "/whep/r/p"
		if whip {
			path = "/whip/r"
		}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/sdp")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusCreated:
			del := httptest.NewRequest(http.MethodDelete, rec.Header().Get("Location"), nil)
			drec := httptest.NewRecorder()
			mux.ServeHTTP(drec, del)
			if drec.Code != http.StatusOK {
				t.Fatalf("DELETE %s: %d", rec.Header().Get("Location"), drec.Code)
			}
		case rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable:
			t.Fatalf("status %d for bad input: %s", rec.Code, rec.Body.String())
		}
	})
}
