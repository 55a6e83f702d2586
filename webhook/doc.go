// Package webhook delivers Chorus server events (rooms, participants,
// tracks, recordings) to external HTTP endpoints.
//
// # Delivery
//
// A [Notifier] is created with [New] and fed with [Notifier.Notify], which
// never blocks: events are placed on a bounded in-memory queue per
// endpoint and a dedicated goroutine per endpoint delivers them one at a
// time, in the order they were notified. When a queue is full the newest
// event is dropped for that endpoint and counted in [Stats].Dropped.
// [Notifier.Close] stops accepting events and flushes the queues until its
// context ends. Events are not persisted: anything still queued when the
// process exits is lost.
//
// # Wire format
//
// Each event is sent as an HTTP POST whose body is the JSON encoding of
// [Event], for example:
//
//	POST /hooks/chorus HTTP/1.1
//	Content-Type: application/json
//	X-Chorus-Event: participant_joined
//	X-Chorus-Delivery: evt_FDZQDIG37OYAL3WMXLJQBUHPLK
//	X-Chorus-Timestamp: 1767225600
//	X-Chorus-Signature: sha256=5f0c…(64 hex digits)
//
//	{"id":"evt_FDZQDIG37OYAL3WMXLJQBUHPLK","event":"participant_joined",
//	 "created_at":1767225600,"room":"standup",
//	 "participant":{"id":"PA_1","identity":"alice","name":"Alice"}}
//
// Headers:
//
//   - X-Chorus-Event: the event name, identical to the "event" field.
//   - X-Chorus-Delivery: the event ID, identical to the "id" field. It is
//     the same on every retry and for every endpoint, so receivers can use
//     it to de-duplicate.
//   - X-Chorus-Timestamp: the time of this attempt in Unix seconds. It is
//     refreshed on every retry.
//   - X-Chorus-Signature: "sha256=" followed by the lower-case hex
//     HMAC-SHA256, keyed with the shared secret, of the timestamp header
//     value, a single "." and the exact request body bytes.
//
// Receivers should recompute the signature over the raw body (before any
// JSON decoding), compare it in constant time, and reject requests whose
// timestamp is too far from their own clock; [Verify] does all of this.
//
// # Responses and retries
//
// Any 2xx status means the event was delivered. 408, 429, any 5xx status,
// network errors and per-attempt timeouts are retried after the configured
// backoff, up to Config.MaxAttempts attempts in total. On 429 and 503 a
// Retry-After header (seconds, or an HTTP date) replaces the backoff delay,
// capped at 60 seconds. Every other status (including other 4xx and
// unfollowed 3xx redirects) is a permanent failure and is not retried.
// Endpoints should answer quickly and do their processing asynchronously,
// since a slow endpoint delays every later event for that endpoint.
package webhook
