// Package fec implements ULPFEC (RFC 5109, level 0 only) carried in RED
// (RFC 2198), the forward error correction Chrome negotiates for video by
// default ("red" and "ulpfec" in its offers; the payload type numbers vary
// between versions and must come from the negotiated SDP, so every function
// here takes them as parameters).
//
// The Encoder also writes FlexFEC-03 (Format FlexFEC03, flexfec.go): the
// same XOR with the header of draft-ietf-payload-flexible-fec-scheme-03, sent
// on a stream of its own. Chromium 156 offers "flexfec-03" by default and
// decodes that header (its log says "FlexFEC03 packet protecting multiple
// media SSRCs ... discarding" for the RFC 8627 header, which has no SSRC
// count, and "Recovered media packet ... from FlexFEC stream" for this one).
//
// What a libwebrtc (Chrome) receiver expects, checked against its receive
// path (RtpVideoStreamReceiver2, UlpfecReceiver, ForwardErrorCorrection,
// UlpfecHeaderReader):
//
//   - Only packets whose RTP payload type is the RED type reach the FEC
//     receiver; packets sent with the media payload type go straight to the
//     depacketizer and can never be used to recover another packet. So with
//     ULPFEC every protected media packet must be sent as RED too: the RTP
//     header with PT = red, then the one-byte RED header 0|mediaPT, then the
//     original payload (and the original padding, P bit kept). WrapRED builds
//     that payload.
//   - FEC packets are RED packets whose block payload type is the ulpfec
//     type, on the same SSRC as the media (the receiver takes the protected
//     SSRC from the FEC packet's own SSRC), with sequence numbers from the
//     same sequence space: the receiver marks a received FEC packet's number
//     as padding so that frame assembly and NACK see no hole there. A lost FEC
//     packet therefore does leave a hole, and may be NACKed.
//   - RED packets with more than one block (F bit set) are dropped.
//   - The receiver rebuilds a "virtual" media packet from each RED media
//     packet (RED header removed, PT set to the block PT) and computes FEC
//     over that, so FEC must be computed over the media packets as they are
//     before RED encapsulation: media PT, rewritten sequence number and
//     timestamp, header extensions and padding as sent.
//   - Before using a received media packet for recovery the receiver zeroes
//     the extensions a pacer writes after FEC is computed: transport-wide-cc
//     (both versions), toffset and abs-send-time entirely, video-timing from
//     byte 7 on. The FEC input must have the same bytes zeroed (see
//     MutableExtension, LibwebrtcMutable).
//   - FEC covers everything after the 12-byte fixed header (CSRCs, header
//     extension, payload, padding); protection length is the length of the
//     FEC payload after the headers; a recovered packet is 12 + length
//     recovery bytes long; masks are 16 bits (L = 0) or 48 bits (L = 1) read
//     most significant bit first from SN base. The receiver tracks at most 48
//     FEC packets and, in recent versions, 192 media packets.
//
// Integration notes for the subscriber leg:
//
//   - FEC has to be computed over the bytes that leave the SFU. Chorus's
//     DownTrack writes a header without extensions and pion's TWCC header
//     extension interceptor adds transport-wide-cc afterwards. That element
//     is zeroed by the receiver, but its presence (X bit, 0xBEDE block,
//     element header, padding) is not, so the Encoder must see the packet
//     with that block. Either feed the Encoder from an interceptor bound after
//     the TWCC one (AddHeader takes the final header), or build the same
//     extension block before calling Add.
//   - Each FEC packet goes out as RTP with PT = red, the media SSRC, the
//     next sequence number of the media's space (after the packets it
//     protects), the timestamp of the last media packet it protects and the
//     marker bit clear; its payload is WrapRED(dst, ulpfecPT, fecPayload).
//   - Padding-only probe packets should not be added; a gap in sequence
//     numbers does not hurt (masks follow sequence numbers).
//   - On the subscriber leg the SFU is the offerer: red and ulpfec must be in
//     its offer (registered with the media engine) for Chrome to enable its
//     ULPFEC receiver.
//   - Retransmissions of RED media go over RTX for the red payload type
//     (Chrome offers rtx with apt=red) or as the original RED packet.
//   - A FEC packet is up to 19 bytes longer than the longest packet it
//     protects (18-byte ULPFEC headers with the long mask, 1 RED byte).
package fec
