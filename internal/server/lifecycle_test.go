package server_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chorus-sfu/chorus/internal/server"
	"github.com/chorus-sfu/chorus/signaling/client"
)

// Closing the server with clients connected ends every session, tells the
// clients, and leaves no goroutine behind (server or client side).
func TestServerCloseLeavesNoGoroutines(t *testing.T) {
	// registered first, so it runs after every other cleanup of this test
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	s, err := server.Start(server.Config{Listen: "127.0.0.1:0", UDPIP: "127.0.0.1", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := deadline(t, 30*time.Second)
	var clients []*client.Client
	var sources []func()
	for _, n := range []string{"a", "b", "c"} {
		p := newPeer(t, s, "room", n, nil)
		v := videoSource(t, n)
		p.publish(ctx, v)
		sources = append(sources, pump(t, v, 5*time.Millisecond))
		clients = append(clients, p.c)
	}
	// every client has been offered the others' tracks before the shutdown
	for _, c := range clients {
		for c.Subscriber() == nil {
			select {
			case <-ctx.Done():
				t.Fatal("no subscriber connection")
			case <-time.After(10 * time.Millisecond): // polling interval
			}
		}
	}
	whipPublish(t, ctx, s, "room", "w", videoSource(t, "w"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatal("a client was not disconnected")
		}
	}
	for _, stop := range sources {
		stop()
	}
}
