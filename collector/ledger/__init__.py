"""The slice ledger: what has been read is kept, so an answer costs the new minutes only.

Time is cut into fixed UTC slices (`LEDGER_SLICE_MINUTES`). Each slice read from the export is
folded into a mergeable state (`state`) and kept in a store (`store`), by the hour; settled days
are rolled up. A window is answered from the states of its slices, reading only those the
ledger lacks or must refresh, plus any unaligned edge (`service`).
"""
