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

// App data: each tab opens the data channels; a message one tab sends to the
// other on the reliable channel arrives with its sender and topic, and one
// sent to the room on the lossy channel arrives too.
func TestBrowserData(t *testing.T) {
	w := newTestWriter(t)
	s := startServer(t, w)
	b := newBrowser(t, w)
	j := joinPair(t, b, s, "data")
	a, bt := j.a, j.b
	waitJS := func(tb *tab, what, expr string) { tb.waitJS(what, expr, `JSON.stringify(window.chorus.data)`) }
	waitJS(a, "data channels open", `window.chorus.data.open`)
	waitJS(bt, "data channels open", `window.chorus.data.open`)
	bID, err := evaluate[string](bt, `window.chorus.participantId`)
	if err != nil {
		t.Fatal(err)
	}
	aID, err := evaluate[string](a, `window.chorus.participantId`)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := evaluate[bool](a, `window.chorus.sendData('hello b', {to: [`+jsString(bID)+`], topic: 'greeting'})`); err != nil || !ok {
		t.Fatalf("sendData: %v %v", ok, err)
	}
	waitJS(bt, "a's reliable message", `window.chorus.data.received.some((m) => m.text === 'hello b' && m.topic === 'greeting' && m.reliable && m.from === `+jsString(aID)+`)`)
	if ok, err := evaluate[bool](bt, `window.chorus.sendData(new Uint8Array([104, 105]), {reliable: false})`); err != nil || !ok {
		t.Fatalf("sendData: %v %v", ok, err)
	}
	waitJS(a, "b's lossy message", `window.chorus.data.received.some((m) => m.text === 'hi' && !m.reliable && m.from === `+jsString(bID)+`)`)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// A tab whose connection drops joins again by itself and pulls only the chat
// it missed: it keeps what it had and shows every message once, in order.
func TestBrowserChatReconnect(t *testing.T) {
	w := newTestWriter(t)
	s := startServer(t, w)
	b := newBrowser(t, w)
	j := joinPair(t, b, s, "rejoin")
	a, bt := j.a, j.b
	say := func(tb *tab, text string) {
		t.Helper()
		tb.exec(`document.getElementById('chat-input').value = ` + jsString(text))
		tb.exec(`document.getElementById('chat-form').requestSubmit()`)
	}
	waitJS := func(tb *tab, what, expr string) {
		tb.waitJS(what, expr, `JSON.stringify({state: window.chorus.state, chat: window.chorus.chat})`)
	}
	texts := `window.chorus.chat.messages.map((m) => m.text).join('|')`
	say(bt, "one")
	say(bt, "two")
	waitJS(a, "one and two", texts+` === 'one|two'`)
	aID, err := evaluate[string](a, `window.chorus.participantId`)
	if err != nil {
		t.Fatal(err)
	}
	a.exec(`window.chorus.session.ws.close()`)
	waitJS(bt, "a gone", `!(`+jsString(aID)+` in window.chorus.participants)`)
	say(bt, "three")
	say(bt, "four")
	waitJS(a, "back in the room with the missed messages", `window.chorus.state === 'joined' && `+texts+` === 'one|two|three|four'`)
	pulls, err := evaluate[string](a, `JSON.stringify(window.chorus.chat.pulls)`)
	if err != nil {
		t.Fatal(err)
	}
	if pulls != "[2]" {
		t.Fatalf("pulls started after %s, want one pull after seq 2", pulls)
	}
}

// waitJS polls until the JavaScript expression expr is true, failing after
// uiDeadline with what and the value of the expression show.
func (tb *tab) waitJS(what, expr, show string) {
	tb.t.Helper()
	deadline := time.Now().Add(uiDeadline)
	for {
		ok, err := evaluate[bool](tb, expr)
		if err != nil {
			tb.t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			state, _ := evaluate[string](tb, show)
			tb.t.Fatalf("%s: %s; %s", tb.name, what, state)
		}
		time.Sleep(pollInterval)
	}
}
