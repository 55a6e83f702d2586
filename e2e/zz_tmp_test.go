package e2e

import (
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

func shot(t *testing.T, tb *tab, file string) {
	buf, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil { t.Fatal(err) }
	os.WriteFile(file, buf, 0o644)
}

func TestTmpShots(t *testing.T) {
	w := newTestWriter(t)
	s := startServer(t, w)
	b := newBrowser(t, w)
	j := joinPair(t, b, s, "design-review")
	tc := b.newTab("c", denyMediaJS)
	tc.navigate(roomURL(s, "design-review", "Carol with a rather long display name"))
	tc.waitFor(mediaDeadline, "c", func(s pageState) bool { return s.videoDecoded(2) })
	j.a.click("cam-button")
	j.b.waitFor(uiDeadline, "cam", func(s pageState) bool { tl, ok := s.tile(j.aID); return ok && tl.CamBadge })
	j.b.exec(`window.chorus.session.send({type:'nonsense'})`)
	j.b.waitFor(uiDeadline, "banner", func(s pageState) bool { return s.Banner != "" })
	shot(t, j.b, "/tmp/shot-3.png")
	if err := chromedp.Do(j.b.ctx, chromedp.EmulateViewport(390, 800)); err != nil { t.Fatal(err) }
	j.b.exec(`window.dispatchEvent(new Event('resize'))`)
	shot(t, j.b, "/tmp/shot-narrow.png")
	shot(t, tc, "/tmp/shot-c.png")
}
