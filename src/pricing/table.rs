//! Validation of the raw file into an immutable table, and price lookup by id or alias
//! at an instant (the price history).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use jiff::civil::Date;

use super::raw::{RawEntry, RawModel, RawProvider, Source};
use super::{PricingError, Rates, ResolvedPrice, TokenKind};
use crate::money::{Money, Ratio};

/// Providers the cost engine knows how to price.
const PROVIDERS: [&str; 2] = ["anthropic", "openai"];

/// A validated price table. Cheap to clone (shared immutable data).
#[derive(Clone, Debug)]
pub struct PriceTable {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    version: String,
    models: Vec<Model>,
    /// Id or alias -> index into `models`.
    names: HashMap<String, usize>,
}

#[derive(Debug)]
pub(super) struct Provider {
    pub batch: Ratio,
    pub web_search_fee: Money,
    pub web_search_fee_batch: Money,
    pub geo_us: Ratio,
}

#[derive(Debug)]
pub(super) struct Model {
    pub provider: String,
    pub id: String,
    pub aliases: Vec<String>,
    pub geo_us: bool,
    pub settings: Arc<Provider>,
    /// Sorted by `effective_from`, all distinct.
    pub entries: Vec<Entry>,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub effective_from: Date,
    pub source: String,
    pub unconfirmed: bool,
    pub list: Rates,
    pub batch: Rates,
}

impl PriceTable {
    pub fn load(path: &Path) -> Result<PriceTable, PricingError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PricingError::Io { path: path.display().to_string(), source })?;
        let origin = path
            .file_name()
            .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        PriceTable::parse(&text, &origin)
    }

    /// `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<PriceTable, PricingError> {
        let src = Source { text, origin };
        let raw = src.parse()?;
        let version = raw.version.get_ref().trim().to_string();
        if version.is_empty() {
            return Err(src.invalid(raw.version.span().start, "version", "must not be empty"));
        }
        let mut providers: HashMap<String, Arc<Provider>> = HashMap::new();
        for (name, p) in &raw.providers {
            let key = format!("providers.{}", name.get_ref());
            if !PROVIDERS.contains(&name.get_ref().as_str()) {
                return Err(src.invalid(
                    name.span().start,
                    &key,
                    format!("unknown provider, expected one of {}", PROVIDERS.join(", ")),
                ));
            }
            providers.insert(name.get_ref().clone(), Arc::new(provider(&src, p, &key)?));
        }
        let mut models = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, m) in raw.models.iter().enumerate() {
            let key = format!("models[{i}]");
            let model = model(&src, m, &key, &providers)?;
            let named = std::iter::once((&m.id, "id".to_string()))
                .chain(m.aliases.iter().enumerate().map(|(j, a)| (a, format!("aliases[{j}]"))));
            for (name, field) in named {
                if let Some(&other) = names.get(name.get_ref()) {
                    let other_id = models.get(other).map_or(m.id.get_ref(), |o: &Model| &o.id);
                    let msg = format!(
                        "`{}` is already used by models[{other}] (`{other_id}`)",
                        name.get_ref()
                    );
                    return Err(src.invalid(name.span().start, &format!("{key}.{field}"), msg));
                }
                names.insert(name.get_ref().clone(), i);
            }
            models.push(model);
        }
        Ok(PriceTable { inner: Arc::new(Inner { version, models, names }) })
    }

    /// The table's `version`, exported as the `pricing_version` build-info label.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// By id or alias; the entry in force at `at` (the latest `effective_from` on or before
    /// `at`'s UTC date). `None` if the model is unknown or has no entry in force yet.
    pub fn resolve(&self, model: &str, at: jiff::Timestamp) -> Option<ResolvedPrice> {
        let m = &self.inner.models[*self.inner.names.get(model)?];
        let day = at.to_zoned(jiff::tz::TimeZone::UTC).date();
        let e = m.entries.iter().rev().find(|e| e.effective_from <= day)?;
        let s = &m.settings;
        Some(ResolvedPrice {
            provider: m.provider.clone(),
            model: m.id.clone(),
            effective_from: e.effective_from,
            source: e.source.clone(),
            unconfirmed: e.unconfirmed,
            batch: e.batch,
            list: e.list,
            web_search_fee: s.web_search_fee,
            web_search_fee_batch: s.web_search_fee_batch,
            geo_us: m.geo_us.then_some(s.geo_us),
        })
    }

    /// The day a known model's first price takes effect (UTC), for "no price in force yet"
    /// messages; `None` for a model the table does not know.
    pub fn first_effective(&self, model: &str) -> Option<jiff::civil::Date> {
        let m = &self.inner.models[*self.inner.names.get(model)?];
        m.entries.first().map(|e| e.effective_from)
    }

    /// `(provider, canonical id)` of every model, in file order, for metric label sets.
    pub fn models(&self) -> Vec<(String, String)> {
        self.inner.models.iter().map(|m| (m.provider.clone(), m.id.clone())).collect()
    }

    pub(super) fn raw_models(&self) -> &[Model] {
        &self.inner.models
    }
}

fn provider(src: &Source, p: &RawProvider, key: &str) -> Result<Provider, PricingError> {
    let discount = src.ratio(&p.batch_discount, &format!("{key}.batch_discount"))?;
    if discount.num > discount.den {
        return Err(src.invalid(
            p.batch_discount.span().start,
            &format!("{key}.batch_discount"),
            "must be between 0 and 1",
        ));
    }
    let batch = Ratio { num: discount.den - discount.num, den: discount.den };
    let mut fee = Money::ZERO;
    if let Some(v) = &p.web_search_fee_per_1000 {
        let k = format!("{key}.web_search_fee_per_1000");
        let per_1000 = src.decimal(v, &k)?;
        fee = Ratio { num: 1, den: 1000 }.apply(per_1000).filter(|f| !f.is_negative()).ok_or_else(
            || {
                src.invalid(
                    v.span().start,
                    &k,
                    "must be non-negative and exact to the pico-dollar per search",
                )
            },
        )?;
    }
    let fee_batch = if p.web_search_batch_discount { batch.apply(fee) } else { Some(fee) };
    let fee_batch = fee_batch.ok_or_else(|| {
        // Only a non-zero fee can discount inexactly, so its span exists.
        let at = p.web_search_fee_per_1000.as_ref().map_or(0, |v| v.span().start);
        let msg = "the batch-discounted fee is not a whole pico-dollar per search";
        src.invalid(at, &format!("{key}.web_search_fee_per_1000"), msg)
    })?;
    let geo_us = match &p.geo_us_uplift {
        Some(v) => src.ratio(v, &format!("{key}.geo_us_uplift"))?,
        None => Ratio::ONE,
    };
    Ok(Provider { batch, web_search_fee: fee, web_search_fee_batch: fee_batch, geo_us })
}

fn model(
    src: &Source,
    m: &RawModel,
    key: &str,
    providers: &HashMap<String, Arc<Provider>>,
) -> Result<Model, PricingError> {
    let prov = m.provider.get_ref();
    let settings = providers.get(prov).ok_or_else(|| {
        src.invalid(
            m.provider.span().start,
            &format!("{key}.provider"),
            format!("unknown provider `{prov}` (no [providers.{prov}] section)"),
        )
    })?;
    for (k, s) in std::iter::once(("id", &m.id)).chain(m.aliases.iter().map(|a| ("aliases", a))) {
        let t = s.get_ref();
        if t.is_empty() || t.trim() != t || t.contains(char::is_whitespace) {
            return Err(src.invalid(
                s.span().start,
                &format!("{key}.{k}"),
                format!("`{t}` is not a model id"),
            ));
        }
    }
    if m.prices.is_empty() {
        return Err(src.invalid(
            m.id.span().start,
            &format!("{key}.prices"),
            format!("model `{}` has no price entries", m.id.get_ref()),
        ));
    }
    let mut entries: Vec<Entry> = Vec::new();
    for (j, e) in m.prices.iter().enumerate() {
        let ek = format!("{key}.prices[{j}]");
        let entry = entry(src, e.get_ref(), &ek, prov, settings, m.geo_us)?;
        if let Some(j2) = entries.iter().position(|o| o.effective_from == entry.effective_from) {
            let msg = format!("effective_from {} repeats {key}.prices[{j2}]", entry.effective_from);
            return Err(src.invalid(
                e.get_ref().effective_from.span().start,
                &format!("{ek}.effective_from"),
                msg,
            ));
        }
        entries.push(entry);
    }
    entries.sort_by_key(|e| e.effective_from);
    Ok(Model {
        provider: prov.clone(),
        id: m.id.get_ref().clone(),
        aliases: m.aliases.iter().map(|a| a.get_ref().clone()).collect(),
        geo_us: m.geo_us,
        settings: settings.clone(),
        entries,
    })
}

fn entry(
    src: &Source,
    e: &RawEntry,
    key: &str,
    provider: &str,
    p: &Provider,
    geo: bool,
) -> Result<Entry, PricingError> {
    let effective_from = src.date(&e.effective_from, &format!("{key}.effective_from"))?;
    if e.source.get_ref().trim().is_empty() {
        return Err(src.invalid(
            e.source.span().start,
            &format!("{key}.source"),
            "must name the page the prices came from and when",
        ));
    }
    let openai = provider == "openai";
    let price = |name: &str,
                 v: &Option<toml::Spanned<toml::Value>>|
     -> Result<Option<(Money, usize)>, PricingError> {
        match v {
            Some(v) => {
                Ok(Some((src.price_per_token(v, &format!("{key}.{name}"))?, v.span().start)))
            }
            None => Ok(None),
        }
    };
    let entry_line = e.effective_from.span().start;
    let required = |name: &str, v| -> Result<(Money, usize), PricingError> {
        price(name, v)?
            .ok_or_else(|| src.invalid(entry_line, &format!("{key}.{name}"), "missing price class"))
    };
    let input = required("input", &e.input)?;
    let output = required("output", &e.output)?;
    let (w5, w1h, read, batch_read);
    if openai {
        // OpenAI caches automatically and bills writes as ordinary input, so write classes
        // are not applicable; a missing cached price means cached tokens cost input.
        for (name, v) in
            [("cache_write_5m", &e.cache_write_5m), ("cache_write_1h", &e.cache_write_1h)]
        {
            if let Some(v) = v {
                return Err(src.invalid(
                    v.span().start,
                    &format!("{key}.{name}"),
                    "not applicable to openai (cache writes are billed as input)",
                ));
            }
        }
        (w5, w1h) = (input, input);
        read = price("cache_read", &e.cache_read)?.unwrap_or(input);
        batch_read = price("batch_cache_read", &e.batch_cache_read)?;
    } else {
        w5 = required("cache_write_5m", &e.cache_write_5m)?;
        w1h = required("cache_write_1h", &e.cache_write_1h)?;
        read = required("cache_read", &e.cache_read)?;
        if let Some(v) = &e.batch_cache_read {
            return Err(src.invalid(v.span().start, &format!("{key}.batch_cache_read"), "only for openai; anthropic batch prices are the batch discount applied to every class"));
        }
        batch_read = None;
    }
    let found = [input, output, w5, w1h, read];
    let list = rates(found.map(|(m, _)| m));
    let mut batch = [Money::ZERO; 5];
    for (i, kind) in TokenKind::ALL.into_iter().enumerate() {
        let (money, at) = found[i];
        let exact = |r: Ratio, what: &str| -> Result<Money, PricingError> {
            r.apply(money).ok_or_else(|| {
                let usd = money.times(1_000_000).usd_exact();
                let msg =
                    format!("price {usd} is not a whole pico-dollar per token after the {what}");
                src.invalid(at, &format!("{key}.{}", kind.as_str()), msg)
            })
        };
        batch[i] = exact(p.batch, "batch discount")?;
        if geo {
            exact(p.geo_us, "geo uplift")?;
            exact(p.batch.then(p.geo_us), "batch discount and geo uplift")?;
        }
    }
    let mut batch = rates(batch);
    if openai {
        // Writes bill as input; without a batch cached price, cached tokens bill as batch input.
        batch.cache_write_5m = batch.input;
        batch.cache_write_1h = batch.input;
        batch.cache_read = batch_read.map_or(batch.input, |(m, _)| m);
    }
    Ok(Entry {
        effective_from,
        source: e.source.get_ref().trim().to_string(),
        unconfirmed: e.unconfirmed,
        list,
        batch,
    })
}

/// Builds rates from values in [`TokenKind::ALL`] order.
fn rates(v: [Money; 5]) -> Rates {
    Rates {
        input: v[0],
        output: v[1],
        cache_write_5m: v[2],
        cache_write_1h: v[3],
        cache_read: v[4],
    }
}
