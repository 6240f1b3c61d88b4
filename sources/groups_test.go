package sources

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ids(ms []Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestGroupOrder(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	msg := func(id, group string) Message {
		return Message{ID: id, Group: group, LeaseUntil: now.Add(30 * time.Second)}
	}
	g := NewGroupOrder()

	kept, extras := g.Admit([]Message{msg("a1", "a"), msg("a2", "a"), msg("b1", "b"), msg("x", "")}, now)
	if diff := cmp.Diff([]string{"a1", "b1", "x"}, ids(kept)); diff != "" {
		t.Errorf("first batch kept (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a2"}, ids(extras)); diff != "" {
		t.Errorf("first batch handed back (-want +got):\n%s", diff)
	}
	// Group a stays held until a1 is settled; a redelivery of a1 itself is kept.
	kept, _ = g.Admit([]Message{msg("a2", "a"), msg("a1", "a")}, now)
	if diff := cmp.Diff([]string{"a1"}, ids(kept)); diff != "" {
		t.Errorf("while a1 is held (-want +got):\n%s", diff)
	}
	// A transient settle error keeps the hold; success frees the group.
	a1 := msg("a1", "a")
	g.Settled(&a1, errors.New("timeout"))
	if kept, _ = g.Admit([]Message{msg("a2", "a")}, now); len(kept) != 0 {
		t.Errorf("a2 admitted after a failed settle of a1")
	}
	g.Settled(&a1, nil)
	if kept, _ = g.Admit([]Message{msg("a2", "a")}, now); len(kept) != 1 {
		t.Errorf("a2 not admitted after a1 was settled")
	}
	// A lost lease frees the group; so does a lease that ran out (unless extended).
	b1 := msg("b1", "b")
	g.Settled(&b1, ErrLeaseLost)
	if kept, _ = g.Admit([]Message{msg("b2", "b")}, now); len(kept) != 1 {
		t.Errorf("b2 not admitted after b1's lease was lost")
	}
	g.Extended("b2", now.Add(time.Hour))
	later := now.Add(time.Minute)
	kept, _ = g.Admit([]Message{msg("a3", "a"), msg("b3", "b")}, later)
	if diff := cmp.Diff([]string{"a3"}, ids(kept)); diff != "" {
		t.Errorf("after a2's lease ran out and b2's was extended (-want +got):\n%s", diff)
	}
	if got := g.Len(); got != 2 { // a3 and b2: x's lease ran out too
		t.Errorf("Len = %d, want 2", got)
	}
}
