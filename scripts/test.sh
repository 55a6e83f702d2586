#!/usr/bin/env bash
# Runs the whole Chorus test suite, browser and ffmpeg tests included.
# Installs Chromium, ffmpeg and coturn from Debian when they are missing (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v turnserver >/dev/null 2>&1 || need+=(coturn)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]} ..."
  $sudo apt-get update -qq
  # the first install can fail on a cleaned apt cache: retry once
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

export CHORUS_E2E=1
go vet ./...
# Short fuzzing runs of every fuzz target (the seed corpus also runs in the tests below).
# The budget is a count of executions, not a duration: Go 1.26's fuzz coordinator can
# report a bare "context deadline exceeded" at the end of a timed run (golang/go#75804).
# A few seconds per target on 2 cores; FUZZTIME overrides every budget (e.g. 60s, 1000000x).
fuzz() { go test "$1" -run '^$' -fuzz "^$2\$" -fuzztime "${FUZZTIME:-${3:-100000x}}"; }
fuzz ./signaling FuzzDecode 40000x
fuzz ./signaling FuzzWHIPOffer 40000x
fuzz ./auth FuzzVerify
fuzz ./sfu FuzzParseRTP
fuzz ./sfu FuzzParseDataUp
fuzz ./sfu FuzzUpTrackPublisherInput 40000x
fuzz ./bwe FuzzFeedback
fuzz ./red FuzzParse
fuzz ./red FuzzDecode
fuzz ./fec FuzzParseHeader
fuzz ./fec FuzzUnwrapRED
fuzz ./fec FuzzDecoder
fuzz ./fec FuzzRoundTrip
fuzz ./fec FuzzParseFlexFEC03
fuzz ./simulcast FuzzFrameSize
fuzz ./simulcast FuzzVP9Munger
fuzz ./recorder FuzzDepacketize
fuzz ./recorder/store FuzzValidID
fuzz ./recorder/store FuzzHandlerPath 40000x
# -p 1: packages one at a time, so that the browser tests and the media tests
# do not starve each other of the two cores.
go test -race -count=1 -p 1 -timeout 20m ./...
