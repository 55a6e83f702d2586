package sfu

import (
	"errors"
	"fmt"
)

// App data travels on two data channels of the subscriber connection, which
// the server opens when a participant asks for them: DataLabelReliable
// (ordered, reliable) and DataLabelLossy (unordered, no retransmissions).
// Every message is binary and starts with a small header.
//
// Client to server:
//
//	byte 0      DataWireVersion
//	byte 1      topic length T, then T bytes of topic (UTF-8, may be empty)
//	byte 2+T    recipient count N (0: everyone else in the room), then N
//	            times: one length byte L and L bytes of participant ID
//	rest        the payload
//
// Server to client:
//
//	byte 0      DataWireVersion
//	byte 1      topic length T, then T bytes of topic
//	byte 2+T    sender ID length S, then S bytes of the sender's participant ID
//	rest        the payload
const (
	DataLabelReliable = "chorus-reliable"
	DataLabelLossy    = "chorus-lossy"
	DataWireVersion   = 1
	// MaxDataRecipients bounds the recipients one message may name.
	MaxDataRecipients = 255
)

// ErrDataMalformed reports a data message whose header cannot be parsed.
var ErrDataMalformed = errors.New("sfu: data: malformed message")

// DataUp is a client's data message: what to send to whom.
type DataUp struct {
	Topic   string
	To      []string // participant IDs; empty: everyone else in the room
	Payload []byte   // aliases the parsed buffer
}

// DataDown is a data message as a client receives it.
type DataDown struct {
	From    string // the sender's participant ID
	Topic   string
	Payload []byte // aliases the parsed buffer
}

// AppendDataUp appends a client's data message to b.
func AppendDataUp(b []byte, topic string, to []string, payload []byte) ([]byte, error) {
	if len(topic) > 255 {
		return b, fmt.Errorf("%w: topic longer than 255 bytes", ErrDataMalformed)
	}
	if len(to) > MaxDataRecipients {
		return b, fmt.Errorf("%w: more than %d recipients", ErrDataMalformed, MaxDataRecipients)
	}
	b = append(b, DataWireVersion, byte(len(topic)))
	b = append(b, topic...)
	b = append(b, byte(len(to)))
	for _, id := range to {
		if id == "" || len(id) > 255 {
			return b, fmt.Errorf("%w: recipient ID of %d bytes", ErrDataMalformed, len(id))
		}
		b = append(b, byte(len(id)))
		b = append(b, id...)
	}
	return append(b, payload...), nil
}

// ParseDataUp parses a client's data message. The result aliases b.
func ParseDataUp(b []byte) (DataUp, error) {
	var d DataUp
	r := wireReader{b: b}
	if v := r.byte(); v != DataWireVersion {
		return d, fmt.Errorf("%w: version %d", ErrDataMalformed, v)
	}
	d.Topic = string(r.short())
	n := int(r.byte())
	if n > 0 {
		d.To = make([]string, 0, n)
	}
	for range n {
		id := r.short()
		if len(id) == 0 && r.err == nil {
			r.err = fmt.Errorf("%w: empty recipient ID", ErrDataMalformed)
		}
		d.To = append(d.To, string(id))
	}
	if r.err != nil {
		return DataUp{}, r.err
	}
	d.Payload = r.b
	return d, nil
}

// AppendDataDown appends a data message as delivered to clients to b.
func AppendDataDown(b []byte, from, topic string, payload []byte) []byte {
	b = append(b, DataWireVersion, byte(len(topic)))
	b = append(b, topic...)
	b = append(b, byte(len(from)))
	b = append(b, from...)
	return append(b, payload...)
}

// ParseDataDown parses a data message received from the server. The result
// aliases b.
func ParseDataDown(b []byte) (DataDown, error) {
	var d DataDown
	r := wireReader{b: b}
	if v := r.byte(); v != DataWireVersion {
		return d, fmt.Errorf("%w: version %d", ErrDataMalformed, v)
	}
	d.Topic = string(r.short())
	d.From = string(r.short())
	if r.err != nil {
		return DataDown{}, r.err
	}
	d.Payload = r.b
	return d, nil
}

// wireReader reads length-prefixed fields; the first error sticks.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.err = fmt.Errorf("%w: truncated header", ErrDataMalformed)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// short reads a one-byte length and that many bytes.
func (r *wireReader) short() []byte {
	n := int(r.byte())
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("%w: truncated field", ErrDataMalformed)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
