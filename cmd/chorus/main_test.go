package main

import "testing"

func TestFlagsReadEnvironment(t *testing.T) {
	env := map[string]string{"CHORUS_LISTEN": "0.0.0.0:9000", "CHORUS_UDP_PORT": "9002", "CHORUS_LOG_LEVEL": "debug"}
	o, err := parseFlags(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "0.0.0.0:9000" || o.udpPort != 9002 || o.logLevel != "debug" {
		t.Fatalf("env not applied: %+v", o)
	}
	o, err = parseFlags([]string{"--listen", "127.0.0.1:1", "--udp-port", "5"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "127.0.0.1:1" || o.udpPort != 5 {
		t.Fatalf("flags should win over env: %+v", o)
	}
	o, err = parseFlags(nil, func(string) string { return "" })
	if err != nil || o.listen != "127.0.0.1:7880" || o.udpPort != 7882 {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	if _, err := parseFlags(nil, func(k string) string { return map[string]string{"CHORUS_UDP_PORT": "x"}[k] }); err == nil {
		t.Fatal("bad CHORUS_UDP_PORT accepted")
	}
}

func TestRunRejectsBadLogLevel(t *testing.T) {
	if err := run([]string{"--log-level", "loud"}, func(string) string { return "" }); err == nil {
		t.Fatal("bad log level accepted")
	}
}

func TestRecordingFlags(t *testing.T) {
	env := map[string]string{"CHORUS_RECORDINGS_MAX_AGE": "720h", "CHORUS_AUTO_RECORD": "a,b"}
	o, err := parseFlags([]string{"--recordings-dir", "/tmp/r", "--recordings-max-bytes", "1000", "--client-recording", "false"},
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.recDir != "/tmp/r" || o.recMaxAge.Hours() != 720 || o.recMaxBytes != 1000 || o.autoRecord != "a,b" || o.clientRecording != "false" {
		t.Fatalf("recording flags not applied: %+v", o)
	}
	if _, err := parseFlags(nil, func(k string) string {
		return map[string]string{"CHORUS_RECORDINGS_MAX_AGE": "soon"}[k]
	}); err == nil {
		t.Fatal("a bad duration was accepted")
	}
	if err := run([]string{"--client-recording", "maybe", "--recordings-dir", ""}, func(string) string { return "" }); err == nil {
		t.Fatal("a bad --client-recording was accepted")
	}
	for addr, want := range map[string]bool{"127.0.0.1:7880": true, "[::1]:1": true, "localhost:80": true,
		"0.0.0.0:7880": false, "192.0.2.1:80": false, "bad": false} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v", addr, got)
		}
	}
}
