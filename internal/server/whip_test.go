package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/mediatest"
	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/signaling/client"
)

func newPC(t testing.TB) *webrtc.PeerConnection {
	t.Helper()
	api, err := client.NewAPI(nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// postSDP sends pc's offer (with all candidates) and applies the answer.
// It returns the Location header.
func postSDP(t testing.TB, ctx context.Context, pc *webrtc.PeerConnection, url string) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/sdp" {
		t.Fatalf("answer content type %q", ct)
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		t.Fatal("no Location header")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		t.Fatal(err)
	}
	return loc
}

func doDelete(t testing.TB, s *server.Server, loc string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, strings.TrimSuffix(s.URL(), "/")+loc, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// whipPublish publishes sources over WHIP and returns the resource location.
func whipPublish(t testing.TB, ctx context.Context, s *server.Server, room, name string, srcs ...*mediatest.Source) string {
	t.Helper()
	pc := newPC(t)
	for _, src := range srcs {
		tr, err := pc.AddTransceiverFromTrack(src.Track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		go src.ReadRTCP(tr.Sender())
	}
	return postSDP(t, ctx, pc, s.URL()+"whip/"+room+"?name="+name)
}

type whepViewer struct {
	pc    *webrtc.PeerConnection
	loc   string
	sinks chan *mediatest.Sink
}

func whepPlay(t testing.TB, ctx context.Context, s *server.Server, room, name string) *whepViewer {
	t.Helper()
	v := &whepViewer{pc: newPC(t), sinks: make(chan *mediatest.Sink, 4)}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := v.pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	v.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { v.sinks <- mediatest.NewSink(tr) })
	v.loc = postSDP(t, ctx, v.pc, s.URL()+"whep/"+room+"/"+name)
	return v
}

func (v *whepViewer) sinksByKind(t testing.TB, ctx context.Context, n int) map[webrtc.RTPCodecType]*mediatest.Sink {
	t.Helper()
	out := map[webrtc.RTPCodecType]*mediatest.Sink{}
	for len(out) < n {
		select {
		case sk := <-v.sinks:
			out[sk.Track.Kind()] = sk
		case <-ctx.Done():
			t.Fatalf("WHEP viewer got %d of %d tracks", len(out), n)
		}
	}
	return out
}

// A WHIP publisher is played by a WHEP viewer; DELETE ends both.
func TestWHIPPublishWHEPPlay(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)
	video, audio := videoSource(t, "x"), audioSource(t, "x")
	whipLoc := whipPublish(t, ctx, s, "live", "x", video, audio)
	if !strings.HasPrefix(whipLoc, "/whip/live/") {
		t.Fatalf("WHIP Location %q", whipLoc)
	}
	pump(t, video, 5*time.Millisecond)
	pump(t, audio, 5*time.Millisecond)

	viewer := whepPlay(t, ctx, s, "live", "x")
	sinks := viewer.sinksByKind(t, ctx, 2)
	for kind, sk := range sinks {
		if err := sk.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) >= 100 }); err != nil {
			t.Fatalf("%s: only %d frames", kind, sk.Count())
		}
	}

	if code := doDelete(t, s, viewer.loc); code != http.StatusOK {
		t.Fatalf("WHEP DELETE: %d", code)
	}
	if code := doDelete(t, s, whipLoc); code != http.StatusOK {
		t.Fatalf("WHIP DELETE: %d", code)
	}
	if code := doDelete(t, s, whipLoc); code != http.StatusNotFound {
		t.Fatalf("second WHIP DELETE: %d, want 404", code)
	}
	waitRoomGone(t, ctx, s, "live")
}

func waitRoomGone(t testing.TB, ctx context.Context, s *server.Server, room string) {
	t.Helper()
	for {
		if _, ok := s.SFU().Rooms().Get(room); !ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("room %s still open", room)
		case <-time.After(10 * time.Millisecond): // polling interval
		}
	}
}

// Bad WHIP/WHEP requests get a 4xx with a readable message.
func TestWHIPWHEPErrors(t *testing.T) {
	s := startServer(t)
	ctx := deadline(t, 30*time.Second)
	video := videoSource(t, "p")
	whipPublish(t, ctx, s, "room", "p", video)
	pump(t, video, 5*time.Millisecond)

	cases := []struct {
		name, method, path, ctype, body string
		want                            int
		says                            string
	}{
		{"wrong content type", "POST", "whip/room?name=a", "application/json", "{}", 415, "application/sdp"},
		{"empty offer", "POST", "whip/room?name=a", "application/sdp", "", 400, "empty"},
		{"not SDP", "POST", "whip/room?name=a", "application/sdp", "hello", 400, "malformed"},
		{"bogus SDP", "POST", "whip/room?name=a", "application/sdp", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF\r\n", 400, "SDP"},
		{"unknown room", "POST", "whep/nowhere/p", "application/sdp", "v=0\r\n", 404, "room"},
		{"unknown participant", "POST", "whep/room/nobody", "application/sdp", "v=0\r\n", 404, "participant"},
		{"whep bogus SDP", "POST", "whep/room/p", "application/sdp", "v=0\r\nbogus\r\n", 400, "SDP"},
		{"delete unknown", "DELETE", "whip/room/deadbeef", "", "", 404, "no such"},
		{"put whip", "PUT", "whip/room", "", "", 405, ""},
		{"huge offer", "POST", "whip/room?name=a", "application/sdp", "v=0\r\n" + strings.Repeat("a=x\r\n", 40000), 413, "larger"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, c.method, s.URL()+c.path, strings.NewReader(c.body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, c.want)
			}
			if !strings.Contains(string(body), c.says) {
				t.Fatalf("message %q does not mention %q", body, c.says)
			}
		})
	}
	// the publisher is unharmed: a viewer still plays it
	viewer := whepPlay(t, ctx, s, "room", "p")
	sk := viewer.sinksByKind(t, ctx, 1)[webrtc.RTPCodecTypeVideo]
	if err := sk.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) >= 20 }); err != nil {
		t.Fatal("publisher's media stopped after bad requests")
	}
}
