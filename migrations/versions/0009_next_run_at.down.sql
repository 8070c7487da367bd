-- Reverts revision 0009.
DROP FUNCTION pgqueue.next_run_at(text[], text[]);
