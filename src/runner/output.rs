//! `--out`: one line per input item, its latest result line as the provider wrote it plus
//! `"attempts"`, in input order or by custom_id. Only each item's (file, offset, length)
//! is held in memory; result lines are read back one at a time.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::{Value, json};

use super::input::Input;
use super::provider::Provider;
use super::state::{Outcome, Phase, State, Store};

/// Output order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Input,
    CustomId,
}

pub fn write(
    p: &impl Provider,
    input: &Input,
    store: &Store,
    st: &State,
    order: Order,
    out: &Path,
) -> anyhow::Result<()> {
    let mut loc: Vec<Option<(u32, u64, u32)>> = vec![None; input.len()];
    for b in st.batches.iter().filter(|b| b.phase == Phase::Collected) {
        let path = store.results(b.seq);
        let mut r = BufReader::new(
            File::open(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        );
        let mut line = Vec::new();
        let mut off = 0u64;
        loop {
            line.clear();
            let n = r.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            if let Ok((cid, _)) = p.result(body) {
                if let Some(&i) = input.index.get(&cid) {
                    if st.items[i as usize].batch == Some(b.seq) {
                        loc[i as usize] = Some((b.seq, off, body.len() as u32));
                    }
                }
            }
            off += n as u64;
        }
    }
    let mut idx: Vec<u32> = (0..input.len() as u32).collect();
    if order == Order::CustomId {
        idx.sort_by(|a, b| input.ids[*a as usize].cmp(&input.ids[*b as usize]));
    }
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = std::path::PathBuf::from(tmp);
    let mut w =
        BufWriter::new(File::create(&tmp).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?);
    let mut files: HashMap<u32, File> = HashMap::new();
    for i in idx {
        let it = &st.items[i as usize];
        let mut v = match loc[i as usize] {
            Some((seq, off, len)) => {
                if files.len() > 64 {
                    files.clear();
                }
                let f = match files.entry(seq) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(File::open(store.results(seq))?)
                    }
                };
                f.seek(SeekFrom::Start(off))?;
                let mut buf = vec![0; len as usize];
                f.read_exact(&mut buf)?;
                serde_json::from_slice::<Value>(&buf)?
            }
            None => missing(p, &input.ids[i as usize], it.outcome, it.reason.as_deref()),
        };
        if let Some(o) = v.as_object_mut() {
            o.insert("attempts".into(), json!(it.attempts));
        }
        serde_json::to_writer(&mut w, &v)?;
        w.write_all(b"\n")?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?.sync_all()?;
    std::fs::rename(&tmp, out).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    Ok(())
}

/// The line of an item without a result from the provider (refused, or never answered):
/// shaped like the provider's errored result so readers need one code path.
fn missing(p: &impl Provider, id: &str, outcome: Outcome, reason: Option<&str>) -> Value {
    let reason = reason.unwrap_or(match outcome {
        Outcome::Pending | Outcome::Retry => "not submitted",
        _ => "no result",
    });
    let kind = reason.split(':').next().unwrap_or("error");
    p.errored_line(id, kind, reason)
}
