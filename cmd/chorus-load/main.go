// Command chorus-load connects many simulated participants to a running
// Chorus server from one process and measures chat fan-out: messages per
// second delivered, delivery latency and CPU, with or without media flowing.
// See docs/load.md.
//
//	chorus-load -url ws://127.0.0.1:7880/ws -room load -clients 1000 -join-rate 100/s \
//	    -chat-senders 5 -chat-rate 2 -duration 60s -server-pid $(pgrep -x chorus)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chorus-load:", err)
		os.Exit(1)
	}
}

// options are the command line: the run's config and the output's form.
type options struct {
	cfg      config
	joinRate string
	json     bool
	header   bool
	logLevel string
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	c := &o.cfg
	fs := flag.NewFlagSet("chorus-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.url, "url", "ws://127.0.0.1:7880/ws", "the server's WebSocket URL")
	fs.StringVar(&c.room, "room", "load", "room to join")
	fs.StringVar(&c.token, "token", "", "access token sent with every join (servers with keys)")
	fs.IntVar(&c.clients, "clients", 1000, "simulated participants")
	fs.StringVar(&o.joinRate, "join-rate", "100/s", "joins started per second (or per minute: 600/m)")
	fs.DurationVar(&c.joinTimeout, "join-timeout", 30*time.Second, "longest time one client may take to connect, join and publish")
	fs.BoolVar(&c.media, "media", false, "clients answer the server's subscriber offers and receive media; -publishers of them publish")
	fs.IntVar(&c.publishers, "publishers", 0, "clients that publish synthetic media (needs -media)")
	fs.BoolVar(&c.audioOnly, "audio-only", false, "publishers send audio only (no video)")
	fs.IntVar(&c.videoKbps, "video-kbps", 300, "bitrate of each publisher's synthetic VP8 video (30 frames/s)")
	fs.DurationVar(&c.settle, "settle", 60*time.Second, "longest wait for every client to receive its media before measuring")
	fs.IntVar(&c.chatSenders, "chat-senders", 5, "clients that send chat during the measured interval")
	fs.Float64Var(&c.chatRate, "chat-rate", 2, "chat messages per second per sender (the server allows 5 by default)")
	fs.DurationVar(&c.duration, "duration", 60*time.Second, "measured interval: how long the senders send")
	fs.DurationVar(&c.drain, "drain", 15*time.Second, "longest wait for outstanding deliveries after the last message")
	fs.IntVar(&c.serverPID, "server-pid", 0, "the server's process id, to report its CPU and memory (0: not reported)")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON instead of a markdown table row")
	fs.BoolVar(&o.header, "header", false, "print the markdown table's header before the row")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error (progress goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	r, err := parseRate(o.joinRate)
	if err != nil {
		return o, fmt.Errorf("-join-rate: %w", err)
	}
	c.joinRate = r
	return o, c.validate()
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := runLoad(ctx, o.cfg, log)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
		return nil
	}
	if o.header {
		if _, err := fmt.Fprintln(stdout, tableHeader); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
	}
	if _, err := fmt.Fprintln(stdout, tableRow(res)); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

const tableHeader = "| clients | media | chat | delivery | sent | delivered | deliveries/s | p50 | p90 | p99 | max | " +
	"media pkts/s | server CPU | load CPU | server RSS | problems |\n" +
	"| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"

// tableRow is one run as a markdown table row.
func tableRow(r result) string {
	media := "none"
	if r.Media {
		kind := fmt.Sprintf("audio+video %d kbit/s", r.VideoKbps)
		if r.AudioOnly {
			kind = "audio"
		}
		media = fmt.Sprintf("%d pub, %s (%d/%d receiving)", r.Publishers, kind, r.MediaReady, r.MediaWanted)
	}
	pct := func(v float64) string {
		if v < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.0f %%", v)
	}
	rss := "n/a"
	if r.ServerRSSMB >= 0 {
		rss = fmt.Sprintf("%.0f MB", r.ServerRSSMB)
	}
	completeness := "-"
	if r.Expected > 0 {
		completeness = fmt.Sprintf("%.1f %%", float64(r.Delivered)/float64(r.Expected)*100)
	}
	cols := []string{
		fmt.Sprintf("%d/%d", r.Joined, r.Clients),
		media,
		fmt.Sprintf("%d x %g/s, %.0f s", r.ChatSenders, r.ChatRate, r.Seconds),
		r.Delivery,
		fmt.Sprintf("%d", r.Sent),
		fmt.Sprintf("%d (%s)", r.Delivered, completeness),
		fmt.Sprintf("%.0f", r.DeliveriesSec),
		fmtMs(r.P50ms), fmtMs(r.P90ms), fmtMs(r.P99ms), fmtMs(r.MaxMs),
		fmt.Sprintf("%.0f", r.AudioPktsSec+r.VideoPktsSec),
		pct(r.ServerCPU), pct(r.LoadCPU), rss,
		problems(r),
	}
	return "| " + strings.Join(cols, " | ") + " |"
}

func fmtMs(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// problems lists what went wrong in a run, or "-".
func problems(r result) string {
	var out []string
	if r.JoinFailed > 0 {
		out = append(out, fmt.Sprintf("%d joins failed", r.JoinFailed))
	}
	if r.Disconnects > 0 {
		out = append(out, fmt.Sprintf("%d disconnects", r.Disconnects))
	}
	if r.Missed > 0 {
		out = append(out, fmt.Sprintf("%d missed", r.Missed))
	}
	codes := make([]string, 0, len(r.Errors))
	for c := range r.Errors {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		out = append(out, fmt.Sprintf("%d %s", r.Errors[c], c))
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ", ")
}
