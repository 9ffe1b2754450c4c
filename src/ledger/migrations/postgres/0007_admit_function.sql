-- ==== BEGIN issue 13: admission in one round trip ======================================
-- Admission as one statement. Every budget window of a project is one row that each
-- admission updates; written from the gateway, an admission was six statements (begin,
-- dedupe claim, batch, reservations, window, commit), each a network round trip, and the
-- window row stayed locked from its update to the commit, so admissions to one budget,
-- from one replica or three, queued on those round trips. Here the row is locked for the
-- rest of one function call, and the call's implicit transaction commits as it returns.
--
-- The steps and their order are those of the statements it replaces: the dedupe key
-- first (the unique key makes an identical body wait for the first to commit, then find
-- it taken), then the batch, its reservations and its calibration bounds, and the windows
-- last, in the order the caller gives (its lock order, the one every path uses),
-- each with its conditional reserve. Arrays carry one element per window or model, in
-- that order; the limits may be NULL (no limit in that unit). Money is pico-dollars.
--
-- outcome: 'admitted'; 'duplicate' with detail = the submission holding the key (nothing
-- written); 'refused' with detail = the 1-based index of the first window that could not
-- take its hold, and that window's figures as they stood when it refused (read while the
-- failed reserve still held its row lock; all NULL if the row did not exist). Everything
-- the call wrote is undone: the block is a subtransaction, so a refusal rolls back without
-- an error reaching the server log or the caller.
CREATE OR REPLACE FUNCTION batchcost_admit(
    p_sub_id TEXT, p_project TEXT, p_provider TEXT, p_submitted_at BIGINT,
    p_request_count BIGINT, p_hold_pico BIGINT, p_hold_input BIGINT, p_hold_output BIGINT,
    p_custom_id_fp BIGINT, p_body_hash TEXT, p_estimate_json TEXT, p_lease_owner TEXT,
    p_lease_until BIGINT, p_dedupe_since BIGINT,
    w_budget TEXT[], w_start BIGINT[], w_end BIGINT[], w_project TEXT[], w_period TEXT[],
    w_limit_pico BIGINT[], w_limit_input BIGINT[], w_limit_output BIGINT[],
    w_hold_pico BIGINT[], w_hold_input BIGINT[], w_hold_output BIGINT[],
    b_model TEXT[], b_input_upper BIGINT[], b_output_worst BIGINT[], b_worst_pico BIGINT[],
    b_worst_output_pico BIGINT[],
    OUT outcome TEXT, OUT detail TEXT, OUT spent_pico BIGINT, OUT reserved_pico BIGINT,
    OUT spent_input BIGINT, OUT reserved_input BIGINT, OUT spent_output BIGINT,
    OUT reserved_output BIGINT)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    BEGIN
        INSERT INTO dedupe AS d (project, body_hash, sub_id, submitted_at)
        VALUES (p_project, p_body_hash, p_sub_id, p_submitted_at)
        ON CONFLICT (project, body_hash) DO UPDATE SET sub_id = excluded.sub_id,
            submitted_at = excluded.submitted_at WHERE d.submitted_at < p_dedupe_since;
        IF NOT FOUND THEN
            outcome := 'duplicate';
            SELECT d.sub_id INTO detail FROM dedupe d
            WHERE d.project = p_project AND d.body_hash = p_body_hash;
            RETURN;
        END IF;
        INSERT INTO batches (sub_id, project, provider, state, submitted_at, request_count,
            hold_pico, hold_input, hold_output, custom_id_fp, body_hash, estimate_json,
            lease_owner, lease_until)
        VALUES (p_sub_id, p_project, p_provider, 'submitting', p_submitted_at,
            p_request_count, p_hold_pico, p_hold_input, p_hold_output, p_custom_id_fp,
            p_body_hash, p_estimate_json, p_lease_owner, p_lease_until);
        INSERT INTO reservations (sub_id, budget, window_start, hold_pico, hold_input,
            hold_output, state)
        SELECT p_sub_id, k.b, k.s, k.p, k.i, k.o, 'held'
        FROM unnest(w_budget, w_start, w_hold_pico, w_hold_input, w_hold_output)
            AS k(b, s, p, i, o);
        INSERT INTO batch_bounds (sub_id, model, input_upper, output_worst, worst_pico,
            worst_output_pico)
        SELECT p_sub_id, k.m, k.i, k.o, k.w, k.wo
        FROM unnest(b_model, b_input_upper, b_output_worst, b_worst_pico,
            b_worst_output_pico) AS k(m, i, o, w, wo)
        ON CONFLICT (sub_id, model) DO NOTHING;
        FOR n IN 1 .. COALESCE(array_length(w_budget, 1), 0) LOOP
            INSERT INTO budget_windows AS w (budget, window_start, window_end, project,
                period, limit_pico, limit_input, limit_output, reserved_pico,
                reserved_input, reserved_output)
            SELECT w_budget[n], w_start[n], w_end[n], w_project[n], w_period[n],
                w_limit_pico[n], w_limit_input[n], w_limit_output[n], w_hold_pico[n],
                w_hold_input[n], w_hold_output[n]
            WHERE (w_limit_pico[n] IS NULL OR w_hold_pico[n] <= w_limit_pico[n])
              AND (w_limit_input[n] IS NULL OR w_hold_input[n] <= w_limit_input[n])
              AND (w_limit_output[n] IS NULL OR w_hold_output[n] <= w_limit_output[n])
            ON CONFLICT (budget, window_start) DO UPDATE SET
                limit_pico = excluded.limit_pico, limit_input = excluded.limit_input,
                limit_output = excluded.limit_output,
                reserved_pico = w.reserved_pico + excluded.reserved_pico,
                reserved_input = w.reserved_input + excluded.reserved_input,
                reserved_output = w.reserved_output + excluded.reserved_output
            WHERE (excluded.limit_pico IS NULL
                   OR w.spent_pico + w.reserved_pico + excluded.reserved_pico
                      <= excluded.limit_pico)
              AND (excluded.limit_input IS NULL
                   OR w.spent_input + w.reserved_input + excluded.reserved_input
                      <= excluded.limit_input)
              AND (excluded.limit_output IS NULL
                   OR w.spent_output + w.reserved_output + excluded.reserved_output
                      <= excluded.limit_output);
            IF NOT FOUND THEN
                SELECT w.spent_pico, w.reserved_pico, w.spent_input, w.reserved_input,
                    w.spent_output, w.reserved_output
                INTO spent_pico, reserved_pico, spent_input, reserved_input, spent_output,
                    reserved_output
                FROM budget_windows w
                WHERE w.budget = w_budget[n] AND w.window_start = w_start[n];
                RAISE EXCEPTION USING ERRCODE = 'BC001', MESSAGE = n::TEXT;
            END IF;
        END LOOP;
        outcome := 'admitted';
    EXCEPTION WHEN SQLSTATE 'BC001' THEN
        outcome := 'refused';
        detail := SQLERRM;
    END;
END;
$$;
-- ==== END issue 13 ===================================================================
