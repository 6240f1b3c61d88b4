package sources

import (
	"errors"
	"sync"
	"time"
)

// GroupOrder keeps the order of message groups for a Receiver (SQS FIFO MessageGroupId, Pub/Sub ordering keys): at
// most one message of a group is held at a time, from its receipt until it is settled, its lease is lost, or its
// lease runs out. A queue may hand out several messages of one group in one call; the receiver admits the first and
// hands the others back. It is safe for concurrent use.
type GroupOrder struct {
	mu     sync.Mutex
	held   map[string]groupHold // message ID -> hold
	groups map[string]string    // group -> ID of the message holding it
}

type groupHold struct {
	group string
	until time.Time
}

// NewGroupOrder returns an empty GroupOrder.
func NewGroupOrder() *GroupOrder {
	return &GroupOrder{held: map[string]groupHold{}, groups: map[string]string{}}
}

// Admit filters one received batch at now: it keeps the messages whose group is free (or held by that same message,
// a redelivery) and records them as held until their LeaseUntil, and returns the others, to be handed back. Holds
// whose lease ran out before now are dropped first.
func (g *GroupOrder) Admit(msgs []Message, now time.Time) (kept, extras []Message) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for id, h := range g.held {
		if !h.until.After(now) {
			g.forgetLocked(id)
		}
	}
	kept = make([]Message, 0, len(msgs))
	for _, m := range msgs {
		if m.Group != "" {
			if holder, ok := g.groups[m.Group]; ok && holder != m.ID {
				extras = append(extras, m)
				continue
			}
			g.groups[m.Group] = m.ID
		}
		g.held[m.ID] = groupHold{group: m.Group, until: m.LeaseUntil}
		kept = append(kept, m)
	}
	return kept, extras
}

// Extended records a renewed lease of message id.
func (g *GroupOrder) Extended(id string, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if h, ok := g.held[id]; ok {
		h.until = until
		g.held[id] = h
	}
}

// Settled frees m's group when err says m is no longer held: nil (acked, released or dead-lettered) or a lost lease.
// On another error the caller may retry, and m stays held.
func (g *GroupOrder) Settled(m *Message, err error) {
	if err == nil || errors.Is(err, ErrLeaseLost) {
		g.Forget(m.ID)
	}
}

// Forget drops the hold of message id.
func (g *GroupOrder) Forget(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.forgetLocked(id)
}

func (g *GroupOrder) forgetLocked(id string) {
	h, ok := g.held[id]
	if !ok {
		return
	}
	delete(g.held, id)
	if h.group != "" && g.groups[h.group] == id {
		delete(g.groups, h.group)
	}
}

// Len is the number of messages held.
func (g *GroupOrder) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.held)
}
