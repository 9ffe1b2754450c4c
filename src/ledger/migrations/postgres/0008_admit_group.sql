-- ==== BEGIN issue 13: admissions in groups ============================================
-- Every admission to a budget updates that budget's one window row. With three replicas,
-- up to 24 pooled connections took turns at that row lock, one statement and one commit
-- each, every wait a backend put to sleep and woken again. Here a replica sends every
-- admission waiting at that moment in one call: one statement, one transaction, one
-- commit, and each admission still all or nothing: a refusal or a duplicate in a group
-- leaves nothing of its own behind and changes nothing of the others'.
--
-- A group holds every lock it takes until it commits, and the window rows are the ones
-- every other group waits for, so they are taken last and the work under them is kept
-- to reading and adding figures:
-- 1. Each admission claims its dedupe key (in the order the caller sends them: sorted by
--    project and body hash, the same in every group) and writes its batch row,
--    reservations and calibration bounds. A key already taken is a duplicate, and
--    nothing more is written for it.
-- 2. The group locks every window row it will reserve, in the single lock order
--    (budget, then window start; "C" collation, byte order, as the gateway sorts),
--    inserting a row that does not exist yet with nothing reserved (ON CONFLICT DO
--    UPDATE locks a row another session inserted meanwhile although its WHERE updates
--    nothing), and reads each one's figures.
-- 3. Each admission, in order, is checked against the figures of every one of its
--    windows as read under those locks plus what the group's earlier admissions took,
--    and reserves in all of them, or in none: a refused admission deletes what step 1
--    wrote for it and answers with the first window that could not take its hold, as it
--    stood. Each window row is then updated once, with what the group took in all.
-- No group waits for a dedupe key while it holds a window row, and every group takes
-- both kinds in one order, so groups (and release and settlement, which lock only
-- window rows, in the same order) cannot deadlock.
--
-- An identical body twice in one group: the second is a duplicate of the first if the
-- first is admitted, and refused with it, with the same figures, if it is not.
--
-- Arguments: one element per admission in the s_ arrays; the windows and the models of
-- all admissions follow one another in the w_ and b_ arrays, s_windows and s_models
-- saying how many of each belong to each admission. Returns one row per admission, in
-- order, as version 7's `batchcost_admit` did (outcome 'admitted', 'duplicate' with the holder in
-- detail, or 'refused' with the 1-based index of the refusing window among the
-- admission's own, and its figures).
CREATE OR REPLACE FUNCTION batchcost_admit_group(
    s_sub_id TEXT[], s_project TEXT[], s_provider TEXT[], s_submitted_at BIGINT[],
    s_request_count BIGINT[], s_hold_pico BIGINT[], s_hold_input BIGINT[],
    s_hold_output BIGINT[], s_custom_id_fp BIGINT[], s_body_hash TEXT[],
    s_estimate_json TEXT[], s_lease_owner TEXT[], s_lease_until BIGINT[],
    s_dedupe_since BIGINT[], s_windows INT[], s_models INT[],
    w_budget TEXT[], w_start BIGINT[], w_end BIGINT[], w_project TEXT[], w_period TEXT[],
    w_limit_pico BIGINT[], w_limit_input BIGINT[], w_limit_output BIGINT[],
    w_hold_pico BIGINT[], w_hold_input BIGINT[], w_hold_output BIGINT[],
    b_model TEXT[], b_input_upper BIGINT[], b_output_worst BIGINT[], b_worst_pico BIGINT[],
    b_worst_output_pico BIGINT[])
RETURNS TABLE (outcome TEXT, detail TEXT, spent_pico BIGINT, reserved_pico BIGINT,
    spent_input BIGINT, reserved_input BIGINT, spent_output BIGINT, reserved_output BIGINT)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n_subs INT := COALESCE(array_length(s_sub_id, 1), 0);
    o_outcome TEXT[] := array_fill(NULL::TEXT, ARRAY[n_subs]);
    o_detail TEXT[] := array_fill(NULL::TEXT, ARRAY[n_subs]);
    o_fig BIGINT[] := array_fill(NULL::BIGINT, ARRAY[GREATEST(n_subs, 1), 6]);
    wf INT[] := array_fill(0, ARRAY[n_subs]);
    -- The group's distinct windows, in lock order, and which of them each w_ element is.
    n_w INT := COALESCE(array_length(w_budget, 1), 0);
    w_u INT[] := array_fill(0, ARRAY[n_w]);
    nu INT := 0;
    u_budget TEXT[] := array_fill(NULL::TEXT, ARRAY[n_w]);
    u_start BIGINT[] := array_fill(NULL::BIGINT, ARRAY[n_w]);
    u_fig BIGINT[] := array_fill(0::BIGINT, ARRAY[GREATEST(n_w, 1), 6]);
    u_limit BIGINT[] := array_fill(NULL::BIGINT, ARRAY[GREATEST(n_w, 1), 3]);
    u_add BIGINT[] := array_fill(0::BIGINT, ARRAY[GREATEST(n_w, 1), 3]);
    u_touched BOOLEAN[] := array_fill(false, ARRAY[n_w]);
    c INT;
    wf_next INT := 1;
    bf INT := 1;
    bt INT;
    wt INT;
    refused INT;
    holder TEXT;
    k RECORD;
    v RECORD;
BEGIN
    -- 1. Dedupe keys, batch rows, reservations, bounds.
    FOR i IN 1 .. n_subs LOOP
        wf[i] := wf_next;
        wt := wf_next + s_windows[i] - 1;
        bt := bf + s_models[i] - 1;
        wf_next := wt + 1;
        INSERT INTO dedupe AS d (project, body_hash, sub_id, submitted_at)
        VALUES (s_project[i], s_body_hash[i], s_sub_id[i], s_submitted_at[i])
        ON CONFLICT (project, body_hash) DO UPDATE SET sub_id = excluded.sub_id,
            submitted_at = excluded.submitted_at WHERE d.submitted_at < s_dedupe_since[i];
        IF NOT FOUND THEN
            SELECT d.sub_id INTO holder FROM dedupe d
            WHERE d.project = s_project[i] AND d.body_hash = s_body_hash[i];
            o_outcome[i] := 'duplicate';
            o_detail[i] := holder;
        ELSE
            INSERT INTO batches (sub_id, project, provider, state, submitted_at,
                request_count, hold_pico, hold_input, hold_output, custom_id_fp, body_hash,
                estimate_json, lease_owner, lease_until)
            VALUES (s_sub_id[i], s_project[i], s_provider[i], 'submitting',
                s_submitted_at[i], s_request_count[i], s_hold_pico[i], s_hold_input[i],
                s_hold_output[i], s_custom_id_fp[i], s_body_hash[i], s_estimate_json[i],
                s_lease_owner[i], s_lease_until[i]);
            INSERT INTO reservations (sub_id, budget, window_start, hold_pico, hold_input,
                hold_output, state)
            SELECT s_sub_id[i], u.b, u.s, u.p, u.ti, u.o, 'held'
            FROM unnest(w_budget[wf[i]:wt], w_start[wf[i]:wt], w_hold_pico[wf[i]:wt],
                w_hold_input[wf[i]:wt], w_hold_output[wf[i]:wt]) AS u(b, s, p, ti, o);
            INSERT INTO batch_bounds (sub_id, model, input_upper, output_worst, worst_pico,
                worst_output_pico)
            SELECT s_sub_id[i], u.m, u.mi, u.o, u.w, u.wo
            FROM unnest(b_model[bf:bt], b_input_upper[bf:bt], b_output_worst[bf:bt],
                b_worst_pico[bf:bt], b_worst_output_pico[bf:bt]) AS u(m, mi, o, w, wo)
            ON CONFLICT (sub_id, model) DO NOTHING;
        END IF;
        bf := bt + 1;
    END LOOP;
    -- 2. The window rows, locked in the one order, and their figures as they stand.
    FOR k IN
        SELECT DISTINCT ON (u.b COLLATE "C", u.s) u.b, u.s, u.e, u.pr, u.pe, u.lp, u.li, u.lo
        FROM unnest(w_budget, w_start, w_end, w_project, w_period, w_limit_pico,
            w_limit_input, w_limit_output) AS u(b, s, e, pr, pe, lp, li, lo)
        ORDER BY u.b COLLATE "C", u.s
    LOOP
        SELECT w.spent_pico, w.reserved_pico, w.spent_input, w.reserved_input,
            w.spent_output, w.reserved_output INTO v
        FROM budget_windows w WHERE w.budget = k.b AND w.window_start = k.s FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO budget_windows AS w (budget, window_start, window_end, project,
                period, limit_pico, limit_input, limit_output)
            VALUES (k.b, k.s, k.e, k.pr, k.pe, k.lp, k.li, k.lo)
            ON CONFLICT (budget, window_start) DO UPDATE SET budget = w.budget WHERE false;
            SELECT w.spent_pico, w.reserved_pico, w.spent_input, w.reserved_input,
                w.spent_output, w.reserved_output INTO v
            FROM budget_windows w WHERE w.budget = k.b AND w.window_start = k.s;
        END IF;
        nu := nu + 1;
        u_budget[nu] := k.b;
        u_start[nu] := k.s;
        -- Per window: spent and reserved (as locked, plus this group's admissions so far)
        -- in pico-dollars, input and output tokens.
        u_fig[nu][1] := v.spent_pico;
        u_fig[nu][2] := v.reserved_pico;
        u_fig[nu][3] := v.spent_input;
        u_fig[nu][4] := v.reserved_input;
        u_fig[nu][5] := v.spent_output;
        u_fig[nu][6] := v.reserved_output;
        FOR n IN 1 .. COALESCE(array_length(w_budget, 1), 0) LOOP
            IF w_budget[n] = k.b AND w_start[n] = k.s THEN
                w_u[n] := nu;
            END IF;
        END LOOP;
    END LOOP;
    -- 3. Each admission, in order, fits in all its windows or is refused; the figures
    --    are added up here and written once per window below.
    FOR i IN 1 .. n_subs LOOP
        CONTINUE WHEN o_outcome[i] IS NOT NULL;
        wt := wf[i] + s_windows[i] - 1;
        refused := 0;
        FOR n IN wf[i] .. wt LOOP
            c := w_u[n];
            IF (w_limit_pico[n] IS NOT NULL
                    AND u_fig[c][1] + u_fig[c][2] + w_hold_pico[n] > w_limit_pico[n])
                OR (w_limit_input[n] IS NOT NULL
                    AND u_fig[c][3] + u_fig[c][4] + w_hold_input[n] > w_limit_input[n])
                OR (w_limit_output[n] IS NOT NULL
                    AND u_fig[c][5] + u_fig[c][6] + w_hold_output[n] > w_limit_output[n])
            THEN
                refused := n - wf[i] + 1;
                FOR f IN 1 .. 6 LOOP
                    o_fig[i][f] := u_fig[c][f];
                END LOOP;
                EXIT;
            END IF;
        END LOOP;
        IF refused = 0 THEN
            FOR n IN wf[i] .. wt LOOP
                c := w_u[n];
                u_fig[c][2] := u_fig[c][2] + w_hold_pico[n];
                u_fig[c][4] := u_fig[c][4] + w_hold_input[n];
                u_fig[c][6] := u_fig[c][6] + w_hold_output[n];
                u_add[c][1] := u_add[c][1] + w_hold_pico[n];
                u_add[c][2] := u_add[c][2] + w_hold_input[n];
                u_add[c][3] := u_add[c][3] + w_hold_output[n];
                -- The limits an admission was checked against are the window's now.
                u_touched[c] := true;
                u_limit[c][1] := w_limit_pico[n];
                u_limit[c][2] := w_limit_input[n];
                u_limit[c][3] := w_limit_output[n];
            END LOOP;
            o_outcome[i] := 'admitted';
        ELSE
            DELETE FROM batch_bounds WHERE sub_id = s_sub_id[i];
            DELETE FROM reservations WHERE sub_id = s_sub_id[i];
            DELETE FROM batches WHERE sub_id = s_sub_id[i];
            DELETE FROM dedupe d WHERE d.project = s_project[i]
                AND d.body_hash = s_body_hash[i] AND d.sub_id = s_sub_id[i];
            o_outcome[i] := 'refused';
            o_detail[i] := refused::TEXT;
        END IF;
    END LOOP;
    FOR c IN 1 .. nu LOOP
        CONTINUE WHEN NOT u_touched[c];
        UPDATE budget_windows w SET limit_pico = u_limit[c][1],
            limit_input = u_limit[c][2], limit_output = u_limit[c][3],
            reserved_pico = w.reserved_pico + u_add[c][1],
            reserved_input = w.reserved_input + u_add[c][2],
            reserved_output = w.reserved_output + u_add[c][3]
        WHERE w.budget = u_budget[c] AND w.window_start = u_start[c];
    END LOOP;
    -- A duplicate of an admission of this group that was refused is refused with it.
    FOR i IN 1 .. n_subs LOOP
        CONTINUE WHEN o_outcome[i] <> 'duplicate';
        FOR j IN 1 .. n_subs LOOP
            IF s_sub_id[j] = o_detail[i] AND o_outcome[j] = 'refused' THEN
                o_outcome[i] := 'refused';
                o_detail[i] := o_detail[j];
                FOR f IN 1 .. 6 LOOP
                    o_fig[i][f] := o_fig[j][f];
                END LOOP;
            END IF;
        END LOOP;
    END LOOP;
    FOR i IN 1 .. n_subs LOOP
        outcome := o_outcome[i];
        detail := o_detail[i];
        spent_pico := o_fig[i][1];
        reserved_pico := o_fig[i][2];
        spent_input := o_fig[i][3];
        reserved_input := o_fig[i][4];
        spent_output := o_fig[i][5];
        reserved_output := o_fig[i][6];
        RETURN NEXT;
    END LOOP;
END;
$$;

-- Version 7's one-admission function: every admission now goes through the group.
DROP FUNCTION IF EXISTS batchcost_admit(TEXT, TEXT, TEXT, BIGINT, BIGINT, BIGINT, BIGINT,
    BIGINT, BIGINT, TEXT, TEXT, TEXT, BIGINT, BIGINT, TEXT[], BIGINT[], BIGINT[], TEXT[],
    TEXT[], BIGINT[], BIGINT[], BIGINT[], BIGINT[], BIGINT[], BIGINT[], TEXT[], BIGINT[],
    BIGINT[], BIGINT[], BIGINT[]);
-- ==== END issue 13 ===================================================================
