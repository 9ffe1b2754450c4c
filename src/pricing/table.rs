//! Validation of the raw file into an immutable table, and price lookup by (provider,
//! model id or alias) at an instant (the price history).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::entry::{Entry, Terms, discount, entry};
use super::raw::{RawModel, RawProvider, Source};
use super::{PricingError, ProviderKind, ResolvedPrice};
use crate::money::{Money, Ratio};

/// A validated price table. Cheap to clone (shared immutable data).
#[derive(Clone, Debug)]
pub struct PriceTable {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    version: String,
    models: Vec<Model>,
    /// Provider -> id or alias -> index into `models` (nested so a lookup allocates nothing).
    by_provider: HashMap<String, HashMap<String, usize>>,
    /// Id or alias -> index, for [`PriceTable::resolve`]: a first-party provider (named as
    /// its kind) wins over a reseller, then file order.
    names: HashMap<String, usize>,
    /// Every `[providers.NAME]` section's kind, models or not.
    kinds: HashMap<String, ProviderKind>,
}

#[derive(Debug)]
pub(super) struct Provider {
    pub kind: ProviderKind,
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
    pub max_output_tokens: Option<u64>,
    pub embeddings: bool,
    pub settings: Arc<Provider>,
    /// Sorted by `effective_from`, all distinct.
    pub entries: Vec<Entry>,
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
            let n = name.get_ref();
            if n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            {
                let msg = "a provider name is lowercase letters, digits, `-` and `_` (the upstream's name)";
                return Err(src.invalid(name.span().start, &key, msg));
            }
            providers.insert(n.clone(), Arc::new(provider(&src, n, p, &key)?));
        }
        let mut models: Vec<Model> = Vec::new();
        let mut by_provider: HashMap<String, HashMap<String, usize>> = HashMap::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, m) in raw.models.iter().enumerate() {
            let key = format!("models[{i}]");
            let model = model(&src, m, &key, &providers)?;
            let named = std::iter::once((&m.id, "id".to_string()))
                .chain(m.aliases.iter().enumerate().map(|(j, a)| (a, format!("aliases[{j}]"))));
            for (name, field) in named {
                let own = by_provider.entry(model.provider.clone()).or_default();
                if let Some(&other) = own.get(name.get_ref()) {
                    let other_id = models.get(other).map_or(m.id.get_ref(), |o| &o.id);
                    let msg = format!(
                        "`{}` is already used by models[{other}] (`{other_id}`) of provider `{}`",
                        name.get_ref(),
                        model.provider
                    );
                    return Err(src.invalid(name.span().start, &format!("{key}.{field}"), msg));
                }
                own.insert(name.get_ref().clone(), i);
                let first_party = |m: &Model| m.provider == m.settings.kind.as_str();
                let replace = match names.get(name.get_ref()) {
                    None => true,
                    Some(&o) => {
                        let earlier = models.get(o).unwrap_or(&model);
                        !first_party(earlier) && first_party(&model)
                    }
                };
                if replace {
                    names.insert(name.get_ref().clone(), i);
                }
            }
            models.push(model);
        }
        let kinds = providers.iter().map(|(n, p)| (n.clone(), p.kind)).collect();
        let inner = Inner { version, models, by_provider, names, kinds };
        Ok(PriceTable { inner: Arc::new(inner) })
    }

    /// The table's `version`, exported as the `pricing_version` build-info label.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// By provider (the upstream's name, e.g. `openai` or `together`) and id or alias; the
    /// entry in force at `at` (the latest `effective_from` on or before `at`'s UTC date).
    /// `None` if the provider does not list the model or it has no entry in force yet.
    pub fn resolve_for(
        &self,
        provider: &str,
        model: &str,
        at: jiff::Timestamp,
    ) -> Option<ResolvedPrice> {
        let i = *self.inner.by_provider.get(provider)?.get(model)?;
        self.resolve_index(i, at)
    }

    /// By id or alias under any provider (a first-party provider wins where a reseller
    /// lists the same id); otherwise as [`PriceTable::resolve_for`]. Gateways that know
    /// their upstream should call `resolve_for`.
    pub fn resolve(&self, model: &str, at: jiff::Timestamp) -> Option<ResolvedPrice> {
        self.resolve_index(*self.inner.names.get(model)?, at)
    }

    fn resolve_index(&self, i: usize, at: jiff::Timestamp) -> Option<ResolvedPrice> {
        let m = &self.inner.models[i];
        let day = at.to_zoned(jiff::tz::TimeZone::UTC).date();
        let e = m.entries.iter().rev().find(|e| e.effective_from <= day)?;
        let s = &m.settings;
        Some(ResolvedPrice {
            provider: m.provider.clone(),
            kind: s.kind,
            model: m.id.clone(),
            effective_from: e.effective_from,
            source: e.source.clone(),
            unconfirmed: e.unconfirmed,
            batch: e.batch,
            list: e.list,
            long_context: e.long,
            max_output_tokens: m.max_output_tokens,
            embeddings: m.embeddings,
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

    /// The kind of a `[providers.NAME]` section, for checking an upstream's `kind` in
    /// `batchcost.toml` against the rows that will price it. `None`: no such section.
    pub fn provider_kind(&self, provider: &str) -> Option<ProviderKind> {
        self.inner.kinds.get(provider).copied()
    }

    pub(super) fn raw_models(&self) -> &[Model] {
        &self.inner.models
    }
}

fn provider(
    src: &Source,
    name: &str,
    p: &RawProvider,
    key: &str,
) -> Result<Provider, PricingError> {
    let kind = match &p.kind {
        Some(k) => ProviderKind::parse(k.get_ref()).ok_or_else(|| {
            let msg =
                format!("unknown kind `{}`, expected anthropic, openai or gemini", k.get_ref());
            src.invalid(k.span().start, &format!("{key}.kind"), msg)
        })?,
        None => ProviderKind::parse(name).ok_or_else(|| {
            let msg =
                "needs a kind (anthropic, openai or gemini): only those three names imply one";
            src.invalid(p.batch_discount.span().start, &format!("{key}.kind"), msg)
        })?,
    };
    let batch = discount(src, &p.batch_discount, &format!("{key}.batch_discount"))?;
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
        Some(v) if kind != ProviderKind::Anthropic => {
            let msg = "only anthropic-kind providers have a US data-residency uplift";
            return Err(src.invalid(v.span().start, &format!("{key}.geo_us_uplift"), msg));
        }
        Some(v) => src.ratio(v, &format!("{key}.geo_us_uplift"))?,
        None => Ratio::ONE,
    };
    Ok(Provider { kind, batch, web_search_fee: fee, web_search_fee_batch: fee_batch, geo_us })
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
    let kind = settings.kind;
    let line_of_id = m.id.span().start;
    if m.geo_us && kind != ProviderKind::Anthropic {
        let msg = format!("the US uplift is anthropic-only, not for the {} kind", kind.as_str());
        return Err(src.invalid(line_of_id, &format!("{key}.geo_us"), msg));
    }
    if m.embeddings && kind == ProviderKind::Anthropic {
        let msg = "anthropic has no embeddings models";
        return Err(src.invalid(line_of_id, &format!("{key}.embeddings"), msg));
    }
    let max_output_tokens = match &m.max_output_tokens {
        Some(v) => Some(u64::try_from(*v.get_ref()).ok().filter(|&n| n > 0).ok_or_else(|| {
            src.invalid(v.span().start, &format!("{key}.max_output_tokens"), "must be > 0")
        })?),
        None => None,
    };
    let batch = match &m.batch_discount {
        Some(v) => discount(src, v, &format!("{key}.batch_discount"))?,
        None => settings.batch,
    };
    let terms =
        Terms { kind, batch, geo: m.geo_us.then_some(settings.geo_us), embeddings: m.embeddings };
    let mut entries: Vec<Entry> = Vec::new();
    for (j, e) in m.prices.iter().enumerate() {
        let ek = format!("{key}.prices[{j}]");
        let entry = entry(src, e.get_ref(), &ek, &terms)?;
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
        max_output_tokens,
        embeddings: m.embeddings,
        settings: settings.clone(),
        entries,
    })
}
