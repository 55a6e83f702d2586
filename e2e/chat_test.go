package e2e

import (
	"encoding/json"
	"testing"
	"time"
)

// chatState is window.chorus.chat of a tab.
type chatState struct {
	Messages []struct {
		Seq  uint64 `json:"seq"`
		Text string `json:"text"`
	} `json:"messages"`
	Reactions map[string]int `json:"reactions"`
}

func (tb *tab) chat() chatState {
	tb.t.Helper()
	raw, err := evaluate[string](tb, `JSON.stringify((window.chorus && window.chorus.chat) || {})`)
	if err != nil {
		tb.t.Fatal(err)
	}
	var c chatState
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		tb.t.Fatal(err)
	}
	return c
}

// A message typed in one tab appears in the other; a tab that joins later
// pulls it from the history; a reaction reaches the others as a count.
func TestBrowserChat(t *testing.T) {
	w := newTestWriter(t)
	s := startServer(t, w)
	b := newBrowser(t, w)
	j := joinPair(t, b, s, "chat")
	a, bt := j.a, j.b
	a.click("chat-button")
	a.exec(`document.getElementById('chat-input').value = 'hello from a'`)
	a.exec(`document.getElementById('chat-form').requestSubmit()`)
	waitChat := func(tb *tab, what string, cond func(chatState) bool) {
		t.Helper()
		deadline := time.Now().Add(uiDeadline)
		for {
			if cond(tb.chat()) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s; chat state %+v", tb.name, what, tb.chat())
			}
			time.Sleep(pollInterval)
		}
	}
	hasText := func(txt string) func(chatState) bool {
		return func(c chatState) bool {
			for _, m := range c.Messages {
				if m.Text == txt {
					return true
				}
			}
			return false
		}
	}
	waitChat(bt, "the message typed in a", hasText("hello from a"))
	late := b.newTab("late", denyMediaJS)
	late.navigate(roomURL(s, "chat", "late"))
	waitChat(late, "the history pulled after joining", hasText("hello from a"))
	bt.exec(`document.querySelector('#reaction-bar .reaction').click()`)
	waitChat(late, "b's reaction", func(c chatState) bool { return c.Reactions["👍"] >= 1 })
}
