// Package bwe will hold per-subscriber bandwidth estimation (TWCC, loss,
// RTT), probing, and the allocator that splits a subscriber's estimate
// across its tracks by priority. It is filled by the simulcast issue.
package bwe
