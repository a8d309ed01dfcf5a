"""When each API call of every execution happens, inside one QPS budget shared through DynamoDB.

Modules: `belief` (what an operation's tasks take), `plan` (when to poll a task), `slot_table` (the shared table
of call slots and the create lane), `calling` (waiting for a slot and calling in it).

Glossary — the words the scheduler's code uses, defined here once:

- **slot**: a place for one API call. Time is cut into slots `1 / (qps × headroom)` seconds apart; slot `i`
  starts at `i × spacing`. A step reserves a slot before it calls, and the state machine waits until then.
- **reserve / claim**: to reserve is to choose the first free slot at or after a moment and claim it with a
  conditional write; a claim lost to another step moves on to the next slot.
- **announce**: shortly before its slot a call writes when it will really go out (`called_at`); the calls after
  it judge their second by those send times (`ready_at`), not by their slots.
- **create lane**: the places of creates, a fixed gap of slots apart (`CREATE_LANE_GAP` in `create`). A create
  takes the next place at once, so a burst waits once per upload and the slots between creates stay free for the
  polls of tasks already paid for.
- **busy**: creates are queued beyond the next few seconds (`Schedule.busy`): the budget is the bottleneck, and
  every poll is aimed where its task is most likely done.
- **reading**: an idle budget's poll planned before its task is expected done, to read the task's progress.
- **spare**: a reading's slot. A call that cannot wait (a create, a poll expected to find its task done) may take a
  spare slot until the reading has announced itself; the reading then takes another slot, not a spare one.
- **belief**: a lognormal estimate of an operation's processing time, learned from the tasks seen done.
"""
