package server_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/internal/turnserver"
	"github.com/chorus-sfu/chorus/internal/turnserver/turntest"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// selectedPair is the candidate pair ICE selected for pc's first sender or
// receiver.
func selectedPair(t testing.TB, pc *webrtc.PeerConnection) *webrtc.ICECandidatePair {
	t.Helper()
	var tr *webrtc.DTLSTransport
	for _, x := range pc.GetTransceivers() {
		if s := x.Sender(); s != nil && s.Transport() != nil {
			tr = s.Transport()
		} else if r := x.Receiver(); r != nil && r.Transport() != nil {
			tr = r.Transport()
		}
		if tr != nil {
			break
		}
	}
	if tr == nil {
		t.Fatal("no transport")
	}
	pair, err := tr.ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("selected candidate pair: %v %v", pair, err)
	}
	return pair
}

// A client that can only use TCP (a firewall that blocks UDP) publishes and
// another one subscribes, both over ICE-TCP, and the media arrives.
func TestICETCPOnly(t *testing.T) {
	s := startServerWith(t, server.Config{ICETCPPort: -1})
	if s.SFU().TCPAddr() == nil {
		t.Fatal("no ICE-TCP address")
	}
	ctx := deadline(t, 30*time.Second)
	tcpOnly, err := client.NewAPI(func(_ *interceptor.Registry, se *webrtc.SettingEngine) {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := newPeer(t, s, "room", "pub", tcpOnly)
	sub := newPeer(t, s, "room", "sub", tcpOnly)
	video := videoSource(t, "pub")
	pub.publish(ctx, video)
	pump(t, video, 5*time.Millisecond)

	sink := sub.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	if err := sink.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) >= 50 }); err != nil {
		t.Fatalf("only %d frames over ICE-TCP", sink.Count())
	}
	for name, pc := range map[string]*webrtc.PeerConnection{"publisher": pub.c.Publisher(), "subscriber": sub.c.Subscriber()} {
		pair := selectedPair(t, pc)
		if pair.Local.Protocol != webrtc.ICEProtocolTCP || pair.Remote.Protocol != webrtc.ICEProtocolTCP {
			t.Errorf("%s: selected pair %s, want TCP", name, pair)
		}
		if int(pair.Remote.Port) != s.SFU().TCPAddr().(*net.TCPAddr).Port {
			t.Errorf("%s: remote candidate %s is not the ICE-TCP port %s", name, pair.Remote, s.SFU().TCPAddr())
		}
	}
}

// A client that may only use relays (ICETransportPolicyRelay, as a browser
// on a network that only lets TURN through) publishes through the embedded
// TURN server with the server's URLs and credentials; a viewer plays it.
func TestTURNRelayOnly(t *testing.T) {
	if off := startServer(t); off.TURNURLs() != nil {
		t.Fatalf("TURN URLs %v without TURN", off.TURNURLs())
	} else if u, p := off.TURNCredentials("x"); u != "" || p != "" {
		t.Fatal("TURN credentials without TURN")
	}

	s := startServerWith(t, server.Config{TURN: &turnserver.Config{ListenUDP: "127.0.0.1:0", ListenTCP: "127.0.0.1:0",
		PublicIP: "127.0.0.1", Secret: strings.Repeat("s", turnserver.MinSecretLen)}})
	urls := s.TURNURLs()
	if len(urls) != 2 {
		t.Fatalf("TURN URLs %v", urls)
	}
	for _, url := range urls {
		transport := url[strings.LastIndex(url, "=")+1:]
		t.Run(transport, func(t *testing.T) {
			ctx := deadline(t, 30*time.Second)
			room, name := "turn-"+transport, "relayed"
			user, pass := s.TURNCredentials("relay-" + url)
			if !strings.HasSuffix(user, ":relay-"+url) || pass == "" {
				t.Fatalf("credentials %q %q", user, pass)
			}
			api, err := client.NewAPI(nil)
			if err != nil {
				t.Fatal(err)
			}
			pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle,
				ICETransportPolicy: webrtc.ICETransportPolicyRelay,
				ICEServers:         []webrtc.ICEServer{{URLs: []string{url}, Username: user, Credential: pass}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = pc.Close() })
			video := videoSource(t, name)
			tr, err := pc.AddTransceiverFromTrack(video.Track,
				webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				t.Fatal(err)
			}
			go video.ReadRTCP(tr.Sender())
			whipLoc := postSDP(t, ctx, pc, s.URL()+"whip/"+room+"?name="+name)
			if !strings.Contains(pc.LocalDescription().SDP, " typ relay") {
				t.Fatal("the offer has no relay candidate")
			}
			pump(t, video, 5*time.Millisecond)

			viewer := whepPlay(t, ctx, s, room, name)
			sk := viewer.sinksByKind(t, ctx, 1)[webrtc.RTPCodecTypeVideo]
			if err := sk.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) >= 50 }); err != nil {
				t.Fatalf("only %d frames from the relayed publisher", sk.Count())
			}
			if pair := selectedPair(t, pc); pair.Local.Typ != webrtc.ICECandidateTypeRelay {
				t.Fatalf("selected pair %s, want a relayed local candidate", pair)
			}
			// leave as a WHIP client should: the server closes its side first
			for _, loc := range []string{viewer.loc, whipLoc} {
				if code := doDelete(t, s, loc); code != http.StatusOK {
					t.Fatalf("DELETE %s: %d", loc, code)
				}
			}
			waitRoomGone(t, ctx, s, room)
		})
	}
}

// Chorus configured with an external TURN server (coturn, use-auth-secret)
// hands clients its URL and credentials in joined; a relay-only publisher
// connects through it and a viewer receives its video.
func TestExternalTURNRelayOnly(t *testing.T) {
	const secret = "external-coturn-secret-0123456789abcdef"
	addr := turntest.StartCoturn(t, turntest.Coturn(t), secret)
	s := startServerWith(t, server.Config{ExternalTURN: []string{"turn:" + addr + "?transport=udp"}, ExternalTURNSecret: secret})
	ctx := deadline(t, 30*time.Second)
	relayOnly, err := client.Dial(ctx, wsURL(s), client.Options{
		Config: webrtc.Configuration{ICETransportPolicy: webrtc.ICETransportPolicyRelay}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relayOnly.Close() })
	joined, err := relayOnly.Join(ctx, "ext", "relayed")
	if err != nil {
		t.Fatal(err)
	}
	if len(joined.ICEServers) != 1 || joined.ICEServers[0].URLs[0] != "turn:"+addr+"?transport=udp" ||
		!strings.Contains(joined.ICEServers[0].Username, ":anon-") || joined.ICEServers[0].Credential == "" {
		t.Fatalf("joined ICE servers: %+v", joined.ICEServers)
	}
	video := videoSource(t, "relayed")
	senders, err := relayOnly.Publish(ctx, video.Track)
	if err != nil {
		t.Fatal(err)
	}
	go video.ReadRTCP(senders[0])
	pump(t, video, 5*time.Millisecond)
	viewer := newPeer(t, s, "ext", "viewer", nil)
	sink := viewer.sink(ctx, webrtc.RTPCodecTypeVideo, "")
	if err := sink.WaitFor(ctx, func(ix map[uint32]bool) bool { return len(ix) >= 50 }); err != nil {
		t.Fatalf("only %d frames from the relayed publisher", sink.Count())
	}
	if pair := selectedPair(t, relayOnly.Publisher()); pair.Local.Typ != webrtc.ICECandidateTypeRelay {
		t.Fatalf("the publisher's selected pair %s is not relayed", pair)
	}
}
