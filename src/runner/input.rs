//! The input file: one request per line in the provider's shape, or plain items turned
//! into requests by a template. Only line offsets and `custom_id`s stay in memory; request
//! bodies are read back from the file when a batch is built.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::provider::Provider;

/// The input's requests, by index (input order).
pub struct Input {
    /// The request lines (the input itself, or the file the template produced).
    pub path: PathBuf,
    spans: Vec<(u64, u32)>,
    pub ids: Vec<String>,
    pub index: HashMap<String, u32>,
    /// Content hash of the input (and template): a state file belongs to one input.
    pub fingerprint: u128,
}

impl Input {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Bytes of item `i`'s request line.
    pub fn size(&self, i: u32) -> u64 {
        u64::from(self.spans[i as usize].1)
    }

    /// The request lines of `items`, read from the file.
    pub fn lines(&self, items: &[u32]) -> std::io::Result<Vec<Vec<u8>>> {
        let mut f = File::open(&self.path)?;
        let mut pos = u64::MAX;
        let mut out = Vec::with_capacity(items.len());
        for &i in items {
            let (off, len) = self.spans[i as usize];
            if pos != off {
                f.seek(SeekFrom::Start(off))?;
            }
            let mut buf = vec![0; len as usize];
            f.read_exact(&mut buf)?;
            pos = off + u64::from(len);
            out.push(buf);
        }
        Ok(out)
    }
}

/// Reads and checks the input: every line a request of the provider's shape, every
/// `custom_id` valid and unique. Errors name the line.
pub fn load(
    path: &Path,
    template: Option<&Path>,
    work: &Path,
    provider: &impl Provider,
) -> Result<Input, String> {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let lines_path = match template {
        None => path.to_path_buf(),
        Some(t) => {
            let text = std::fs::read(t).map_err(|e| format!("{}: {e}", t.display()))?;
            hasher.update(&text);
            hasher.update(b"\0template\0");
            let tpl: Value = serde_json::from_slice(&text)
                .map_err(|e| format!("{}: not JSON: {e}", t.display()))?;
            std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
            let out = work.join("requests.jsonl");
            expand(path, &tpl, &out, provider)?;
            out
        }
    };
    let file = File::open(&lines_path).map_err(|e| format!("{}: {e}", lines_path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (mut spans, mut ids, mut index) = (Vec::new(), Vec::new(), HashMap::new());
    let mut line = Vec::new();
    let mut off = 0u64;
    let mut no = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("{}: {e}", lines_path.display()))?;
        if n == 0 {
            break;
        }
        no += 1;
        hasher.update(&line);
        let start = off;
        off += n as u64;
        let body = trim(&line);
        if body.is_empty() {
            continue;
        }
        let lead = body.as_ptr() as usize - line.as_ptr() as usize;
        let at = || format!("{} line {no}", path.display());
        let id = provider.custom_id(body).map_err(|e| format!("{}: {e}", at()))?;
        let i = ids.len() as u32;
        if let Some(first) = index.insert(id.clone(), i) {
            return Err(format!(
                "{}: custom_id `{id}` repeats request {} (every custom_id must be unique)",
                at(),
                first + 1
            ));
        }
        let len = u32::try_from(body.len()).map_err(|_| format!("{}: line too long", at()))?;
        spans.push((start + lead as u64, len));
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(format!("{}: no requests", path.display()));
    }
    Ok(Input { path: lines_path, spans, ids, index, fingerprint: hasher.digest128() })
}

fn trim(l: &[u8]) -> &[u8] {
    let s = l.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(l.len());
    let e = l.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(s, |e| e + 1);
    &l[s..e.max(s)]
}

/// Writes one request line per item: the template with `{{field}}` filled from the item.
/// The item's `custom_id` field, else its `id`, else `item-N` (its line number).
fn expand(items: &Path, tpl: &Value, out: &Path, provider: &impl Provider) -> Result<(), String> {
    let file = File::open(items).map_err(|e| format!("{}: {e}", items.display()))?;
    let tmp = out.with_extension("part");
    let mut w = BufWriter::new(File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?);
    for (no, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", items.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", items.display(), no + 1);
        let item: Value =
            serde_json::from_str(&line).map_err(|e| format!("{}: not JSON: {e}", at()))?;
        if !item.is_object() {
            return Err(format!("{}: expected a JSON object", at()));
        }
        let id = match item.get("custom_id").or_else(|| item.get("id")) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => format!("item-{}", no + 1),
        };
        let params = fill(tpl, &item).map_err(|f| format!("{}: no field `{f}`", at()))?;
        let req = provider.templated(&id, params);
        serde_json::to_writer(&mut w, &req).map_err(|e| e.to_string())?;
        w.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    w.into_inner()
        .map_err(|e| e.to_string())?
        .sync_all()
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))
}

/// The template with placeholders replaced: a string that is exactly `{{f}}` takes the
/// field's JSON value; `{{f}}` inside a longer string takes its text.
fn fill(tpl: &Value, item: &Value) -> Result<Value, String> {
    Ok(match tpl {
        Value::String(s) => {
            if let Some(f) = s.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
                if !f.contains("{{") {
                    return item.get(f.trim()).cloned().ok_or_else(|| f.trim().to_string());
                }
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(a) = rest.find("{{") {
                let Some(b) = rest[a..].find("}}") else { break };
                let f = rest[a + 2..a + b].trim();
                let v = item.get(f).ok_or_else(|| f.to_string())?;
                out.push_str(&rest[..a]);
                match v {
                    Value::String(t) => out.push_str(t),
                    other => out.push_str(&other.to_string()),
                }
                rest = &rest[a + b + 2..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| fill(v, item)).collect::<Result<_, _>>()?),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| Ok::<_, String>((k.clone(), fill(v, item)?)))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_take_values_whole_and_inside_text() {
        let tpl = json!({"max_tokens": "{{n}}", "messages": [{"role": "user", "content": "Say {{word}} {{n}} times"}]});
        let item = json!({"n": 3, "word": "hi"});
        let v = fill(&tpl, &item).unwrap();
        assert_eq!(v["max_tokens"], 3);
        assert_eq!(v["messages"][0]["content"], "Say hi 3 times");
        assert_eq!(fill(&tpl, &json!({"n": 1})).unwrap_err(), "word");
    }
}
