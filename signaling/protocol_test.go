package signaling

import (
	"errors"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		in   string
		code string // "" = valid
	}{
		{`{"type":"join","room":"r","name":"a"}`, ""},
		{`{"type":"join","room":"r"}`, ""},
		{`{"type":"join","name":"a"}`, CodeBadRequest},
		{`{"type":"join","room":"` + strings.Repeat("r", MaxRoomLen+1) + `"}`, CodeBadRequest},
		{`{"type":"join","room":"r\u0000x"}`, CodeBadRequest},
		{`{"type":"offer","target":"publisher","sdp":"v=0"}`, ""},
		{`{"type":"offer","target":"publisher"}`, CodeBadSDP},
		{`{"type":"offer","target":"sideways","sdp":"v=0"}`, CodeBadRequest},
		{`{"type":"answer","target":"subscriber","sdp":"v=0"}`, ""},
		{`{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}}`, ""},
		{`{"type":"candidate","target":"publisher"}`, CodeBadRequest},
		{`{"type":"mute","trackId":"t","muted":true}`, ""},
		{`{"type":"mute","trackId":"t"}`, CodeBadRequest},
		{`{"type":"startRecording"}`, ""},
		{`{"type":"startRecording","id":"7","participantId":"PAQ3K5"}`, ""},
		{`{"type":"stopRecording","participantId":"PAQ3K5"}`, ""},
		{`{"type":"stopRecording"}`, ""},
		{`{"type":"startRecording","participantId":"` + strings.Repeat("p", MaxParticipantIDLen+1) + `"}`, CodeBadRequest},
		{`{"type":"stopRecording","participantId":"a\u0007b"}`, CodeBadRequest},
		{`{"type":"startRecording","participantId":7}`, CodeBadJSON},
		{`{"type":"recording","recorded":["P1"]}`, CodeUnknownType}, // server to client only
		{`{"type":"leave"}`, ""},
		{`{"type":"ping"}`, ""},
		{`{"type":"frobnicate"}`, CodeUnknownType},
		{`{}`, CodeBadRequest},
		{`{"type":`, CodeBadJSON},
		{`"join"`, CodeBadJSON},
		{`{"type":5}`, CodeBadJSON},
		{strings.Repeat(" ", MaxMessageSize+1), CodeTooLarge},
	}
	for _, c := range cases {
		_, err := Decode([]byte(c.in))
		if c.code == "" {
			if err != nil {
				t.Errorf("%.60s: unexpected error %v", c.in, err)
			}
			continue
		}
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != c.code {
			t.Errorf("%.60s: got %v, want code %s", c.in, err, c.code)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","room":"r","name":"a"}`,
		`{"type":"offer","target":"publisher","sdp":"v=0\r\n"}`,
		`{"type":"candidate","target":"subscriber","candidate":{"candidate":"x","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"mute","trackId":"t","muted":false}`,
		`{"type":"leave","id":"9"}`,
		`{"type":"startRecording","id":"r1"}`,
		`{"type":"stopRecording","id":"r2","participantId":"PAQ3K5"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code == "" || pe.Msg == "" {
				t.Fatalf("error without code or message: %v", err)
			}
			return
		}
		switch m.Type {
		case TypeOffer, TypeAnswer:
			if m.SDP == "" {
				t.Fatal("valid offer without SDP")
			}
		case TypeCandidate:
			if m.Candidate == nil {
				t.Fatal("valid candidate without candidate")
			}
		case TypeMute:
			if m.Muted == nil {
				t.Fatal("valid mute without state")
			}
		case TypeStartRecording, TypeStopRecording:
			if len(m.ParticipantID) > MaxParticipantIDLen || !printable(m.ParticipantID) {
				t.Fatalf("valid %s with participantId %q", m.Type, m.ParticipantID)
			}
		}
	})
}
