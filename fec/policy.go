package fec

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Protection is a ULPFEC protection level: FEC packets per group of media
// packets ("FEC packets per Group media packets"). The zero value is no FEC.
type Protection struct {
	FEC   int // FEC packets per full group; 0 turns FEC off
	Group int // media packets per full group, 1..MaxGroupSize
}

// ErrProtection is returned for an invalid protection level.
var ErrProtection = errors.New("fec: invalid protection level")

// Validate checks 0 <= FEC <= Group <= MaxGroupSize and Group >= 1 (or the
// zero value, which is "off").
func (p Protection) Validate() error {
	if p == (Protection{}) {
		return nil
	}
	if p.Group < 1 || p.Group > MaxGroupSize || p.FEC < 0 || p.FEC > p.Group {
		return fmt.Errorf("%w: %d FEC per %d media packets", ErrProtection, p.FEC, p.Group)
	}
	return nil
}

// Off reports whether p sends no FEC.
func (p Protection) Off() bool { return p.FEC <= 0 || p.Group <= 0 }

// Rate is FEC packets per media packet.
func (p Protection) Rate() float64 {
	if p.Off() {
		return 0
	}
	return float64(p.FEC) / float64(p.Group)
}

// NominalPacketSize is the media packet size (bytes on the wire, RTP header
// included) Overhead assumes: video packetizers fill packets up to about
// 1200 bytes, and most packets of a video stream are full.
const NominalPacketSize = 1200

// Overhead is the extra bitrate FEC costs, as a fraction of the media
// bitrate, for NominalPacketSize packets: what a bandwidth allocator should
// reserve on top of a layer's bitrate (budget = layer * (1 + Overhead)).
// See OverheadFor.
func (p Protection) Overhead() float64 { return p.OverheadFor(NominalPacketSize) }

// OverheadFor is Overhead for media packets of the given average size. Per
// full group of k media packets of size S with m FEC packets, the extra bytes
// are m FEC packets of about S + 19 bytes each (RTP header, RED header byte,
// 18-byte ULPFEC headers with the long mask, and a protected length equal to
// the largest media packet) plus one RED header byte per media packet:
//
//	overhead = (m*(S+19) + k) / (k*S)
//
// It is a lower bound in two cases the Encoder's statistics show: groups of
// unequal packets (each FEC packet is as long as the longest one it covers)
// and groups closed early at a frame end, which round their FEC count up.
func (p Protection) OverheadFor(avgPacketSize int) float64 {
	if avgPacketSize <= 0 {
		avgPacketSize = NominalPacketSize
	}
	s := float64(avgPacketSize)
	if p.Off() {
		return 1 / s // RED byte only (RED is used whenever ULPFEC is)
	}
	k, m := float64(p.Group), float64(p.FEC)
	return (m*(s+19) + k) / (k * s)
}

// Policy limits.
const (
	// NACKOnlyRTT is the round-trip time below which ProtectionFor turns
	// FEC off: retransmissions repair in time (what libwebrtc's own
	// NACK/FEC hybrid does below 20 ms).
	NACKOnlyRTT = 20 * time.Millisecond
	// MinLoss is the loss below which ProtectionFor turns FEC off: NACK
	// repairs occasional losses for less bandwidth than any FEC.
	MinLoss = 0.01
	// maxSubgroup is the most media packets one FEC packet covers (the
	// weakest protection used); minSubgroup the fewest (50 % overhead:
	// a parity code gains little beyond it and doubling the rate of a lossy,
	// probably congested path does more harm than good).
	maxSubgroup = 24
	minSubgroup = 2
	// policyGroup is the group size the policy aims at: large enough to
	// interleave several FEC packets (burst tolerance), small enough that a
	// group rarely spans many frames.
	policyGroup = 24
)

// ProtectionFor maps the measured loss fraction (0..1, as in an RTCP
// receiver report) and round-trip time to a protection level.
//
// FEC here is a complement to NACK: what FEC does not repair, a
// retransmission can, one RTT later. The longer the RTT, the more a loss
// costs (a frame late by an RTT or more), so the policy asks FEC to remove a
// larger share of the losses as RTT grows: the residual loss after FEC
// should be at most loss/F with F = 2 up to 50 ms RTT, 4 up to 150 ms, and 8
// beyond.
//
// With independent losses of probability p, a media packet in a subgroup of
// s media packets plus one XOR packet is lost for good when it is lost and
// at least one of the s other packets of the subgroup is too:
//
//	residual(s) = p * (1 - (1-p)^s)
//
// so the policy takes the largest s with residual(s) <= p/F, i.e.
// s = floor(ln(1-1/F) / ln(1-p)), clamped to [2, 24]: overhead 1/s, from
// about 4 % to 50 %. It then picks the group (at most 24 packets) holding as
// many whole subgroups as fit, so that m = Group/s FEC packets are
// interleaved and any burst of up to m consecutive losses in a group is
// recovered. Below MinLoss it returns no FEC, nor below NACKOnlyRTT: on so
// short a path retransmissions arrive within the receiver's jitter buffer
// (the SFU sends them in several copies when the path is lossy), and FEC
// would only take bitrate from them and from the media. Measured with
// Chromium at 40 % loss and a few ms RTT: 91.5 % of the frames decoded
// without FEC, 76 % with it.
//
// Examples (RTT 100 ms, F = 4): 2 % loss -> 1/14, 5 % -> 4/20, 10 % and
// above -> 12/24 (the 50 % cap). At RTT 20 ms (F = 2): 5 % -> 1/13,
// 10 % -> 4/24, 20 % -> 8/24.
func ProtectionFor(loss float64, rtt time.Duration) Protection {
	if !(loss >= MinLoss) || rtt < NACKOnlyRTT { // also catches NaN
		return Protection{}
	}
	if loss > 0.99 {
		loss = 0.99
	}
	f := 8.0
	switch {
	case rtt <= 50*time.Millisecond:
		f = 2
	case rtt <= 150*time.Millisecond:
		f = 4
	}
	s := int(math.Floor(math.Log(1-1/f) / math.Log(1-loss)))
	s = max(minSubgroup, min(maxSubgroup, s))
	m := max(1, policyGroup/s)
	return Protection{FEC: m, Group: m * s}
}
