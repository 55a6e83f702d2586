package recorder

import (
	"io"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// BindContext returns a webrtc.TrackLocalContext for binding a down track
// (a webrtc.TrackLocal) to this recorder as if it were a subscriber's
// connection: it offers only the track's codec, no retransmission or FEC
// stream, and its WriteStream is the TrackRecorder.
func (t *TrackRecorder) BindContext() webrtc.TrackLocalContext { return bindContext{t} }

type bindContext struct{ t *TrackRecorder }

func (c bindContext) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{{RTPCodecCapability: c.t.capab, PayloadType: c.t.pt}}
}

func (bindContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (c bindContext) SSRC() webrtc.SSRC                                    { return c.t.bindSSRC }
func (bindContext) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (bindContext) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (c bindContext) WriteStream() webrtc.TrackLocalWriter                 { return c.t }
func (c bindContext) ID() string                                           { return "recorder-" + c.t.id }

// RTCPReader returns a reader that has nothing: a recorder sends no RTCP;
// it asks for keyframes through TrackOptions.RequestKeyframe.
func (bindContext) RTCPReader() interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func([]byte, interceptor.Attributes) (int, interceptor.Attributes, error) {
		return 0, nil, io.EOF
	})
}
