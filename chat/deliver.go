package chat

import "slices"

// job is one queued delivery: msgs to Deliver to every member of to, or,
// when notify > 0, Notify(notify) to every member of to. to is an
// immutable snapshot taken under the lock when the job was queued, so a
// member receives exactly the stored messages sent after it joined.
type job struct {
	msgs    []Message
	to      []*member
	archive bool   // msgs are stored messages for RoomOptions.Archive
	notify  uint64 // latest Seq for a notification
}

// sameTargets reports whether two snapshots are the same one.
func sameTargets(a, b []*member) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// enqueue appends j to the outbox and reports whether the caller must run
// the outbox because no other goroutine is running it. r.mu must be held.
func (r *Room) enqueue(j job) (drain bool) {
	r.outbox = append(r.outbox, j)
	if r.draining {
		return false
	}
	r.draining = true
	return true
}

// drain runs the outbox until it is empty, without holding the lock while
// callbacks run. Only one goroutine drains at a time (see enqueue), which
// keeps deliveries in order.
func (r *Room) drain() {
	var done []job
	finished := false
	defer func() {
		if !finished { // a callback panicked: let the next sender drain
			r.mu.Lock()
			r.draining = false
			r.mu.Unlock()
		}
	}()
	for {
		r.mu.Lock()
		if done != nil && r.spare == nil {
			clear(done)
			r.spare = done[:0]
		}
		jobs := r.outbox
		if len(jobs) == 0 {
			r.draining = false
			r.mu.Unlock()
			finished = true
			return
		}
		r.outbox, r.spare = r.spare, nil
		r.mu.Unlock()
		r.run(jobs)
		done = jobs
	}
}

// run performs jobs in order. Consecutive jobs for the same snapshot are
// coalesced into one Deliver call per member.
func (r *Room) run(jobs []job) {
	for i := 0; i < len(jobs); {
		j := jobs[i]
		i++
		if j.notify > 0 {
			for i < len(jobs) && jobs[i].notify > 0 && sameTargets(jobs[i].to, j.to) {
				j.notify = max(j.notify, jobs[i].notify)
				i++
			}
			r.notifyAll(j.to, j.notify)
			continue
		}
		batch := j.msgs
		r.archiveAll(j)
		if i < len(jobs) && jobs[i].notify == 0 && sameTargets(jobs[i].to, j.to) {
			// Coalesce into a new slice: jobs' own slices may have been
			// passed to Deliver and kept, so they are never written to.
			batch = slices.Clone(batch)
			for i < len(jobs) && jobs[i].notify == 0 && sameTargets(jobs[i].to, j.to) {
				batch = append(batch, jobs[i].msgs...)
				r.archiveAll(jobs[i])
				i++
			}
		}
		r.deliverAll(j.to, batch)
	}
}

func (r *Room) archiveAll(j job) {
	if !j.archive || r.archive == nil {
		return
	}
	for _, m := range j.msgs {
		r.archive(m)
	}
}

func (r *Room) deliverAll(to []*member, batch []Message) {
	var ok uint64
	for _, m := range to {
		if m.gone.Load() {
			continue
		}
		if m.Deliver(batch) {
			ok++
		} else {
			r.evict(m, "deliver")
		}
	}
	r.st.delivered.Add(ok * uint64(len(batch)))
}

func (r *Room) notifyAll(to []*member, latest uint64) {
	var ok uint64
	for _, m := range to {
		if m.gone.Load() {
			continue
		}
		if m.Notify(latest) {
			ok++
		} else {
			r.evict(m, "notify")
		}
	}
	r.st.notified.Add(ok)
}

// evict removes a member whose callback returned false. It is called
// without the lock.
func (r *Room) evict(m *member, callback string) {
	if m.gone.Swap(true) {
		return // left meanwhile
	}
	r.mu.Lock()
	if r.members[m.ID] == m {
		r.remove(m)
	}
	r.mu.Unlock()
	r.st.evicted.Add(1)
	r.log.Info("chat member too slow, removed", "member", m.ID, "callback", callback)
}
