package client

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/pion/webrtc/v4"

	"github.com/chorus-sfu/chorus/sfu"
)

// ErrNoData reports that the app data channels are not open.
var ErrNoData = errors.New("client: data channels not open")

// DataMessage is an app data message received from another participant.
type DataMessage struct {
	From     string // the sender's participant ID
	Topic    string
	Payload  []byte
	Reliable bool // it came on the reliable channel
}

func (c *Client) onDataChannel(dc *webrtc.DataChannel) {
	label := dc.Label()
	if label != sfu.DataLabelReliable && label != sfu.DataLabelLossy {
		return
	}
	reliable := label == sfu.DataLabelReliable
	dc.OnOpen(func() {
		c.mu.Lock()
		c.dcs[label] = dc
		both := len(c.dcs) == 2
		c.mu.Unlock()
		if both {
			c.dataOnce.Do(func() { close(c.dataOpen) })
		}
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		d, err := sfu.ParseDataDown(m.Data)
		if err != nil || c.opts.OnData == nil {
			return
		}
		c.opts.OnData(DataMessage{From: d.From, Topic: d.Topic, Payload: d.Payload, Reliable: reliable})
	})
}

// WaitData waits until both app data channels are open.
func (c *Client) WaitData(ctx context.Context) error {
	select {
	case <-c.dataOpen:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNoData, ctx.Err())
	case <-c.done:
		return fmt.Errorf("%w: %w", ErrNoData, net.ErrClosed)
	}
}

// SendData sends payload to the participants to (IDs; none: everyone else
// in the room) on the reliable or the lossy channel.
func (c *Client) SendData(reliable bool, topic string, to []string, payload []byte) error {
	msg, err := sfu.AppendDataUp(nil, topic, to, payload)
	if err != nil {
		return err
	}
	return c.SendDataRaw(reliable, msg)
}

// SendDataRaw sends bytes as they are (for tests of bad input).
func (c *Client) SendDataRaw(reliable bool, msg []byte) error {
	label := sfu.DataLabelLossy
	if reliable {
		label = sfu.DataLabelReliable
	}
	c.mu.Lock()
	dc := c.dcs[label]
	c.mu.Unlock()
	if dc == nil {
		return ErrNoData
	}
	return dc.Send(msg)
}
