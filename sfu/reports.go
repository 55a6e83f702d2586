package sfu

import (
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtp"
)

// RTCP receiver and sender reports. pion passes every packet of a sender,
// those of its RTX stream included, through one chain bound to the media
// SSRC, and its sender-report code would take a retransmission's old
// timestamp for the media's newest: the reports' RTP-to-wall-clock mapping
// (what receivers synchronise audio and video with) would jump. The sender
// reports here see the media SSRC's packets only.
func addReports(ir *interceptor.Registry) error {
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return err
	}
	sr, err := report.NewSenderInterceptor()
	if err != nil {
		return err
	}
	ir.Add(rr)
	ir.Add(mediaOnlyFactory{sr})
	return nil
}

type mediaOnlyFactory struct{ inner interceptor.Factory }

func (f mediaOnlyFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	i, err := f.inner.NewInterceptor(id)
	if err != nil {
		return nil, err
	}
	return mediaOnly{i}, nil
}

// mediaOnly lets packets of other SSRCs than the stream's bypass the
// wrapped interceptor.
type mediaOnly struct{ interceptor.Interceptor }

func (m mediaOnly) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	wrapped := m.Interceptor.BindLocalStream(info, w)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if h.SSRC != info.SSRC {
			return w.Write(h, payload, a)
		}
		return wrapped.Write(h, payload, a)
	})
}
