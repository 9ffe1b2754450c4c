//! Exact money counters: `batchcost_cost_usd_total` and `batchcost_list_cost_usd_total`
//! keep pico-dollar totals per label set and become floats only in the exposition, so a
//! counter never drifts from the ledger however many batches it sums.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

use super::name;
use crate::money::Money;

/// Exact per-label cost totals behind `batchcost_cost_usd_total` and
/// `batchcost_list_cost_usd_total`.
pub(super) struct MoneyCounters {
    totals: Mutex<BTreeMap<[String; 3], (Money, Money)>>,
    cost_desc: Desc,
    list_desc: Desc,
}

impl MoneyCounters {
    pub(super) fn new() -> Result<Self, prometheus::Error> {
        let labels = vec!["project".into(), "provider".into(), "model".into()];
        Ok(MoneyCounters {
            totals: Mutex::new(BTreeMap::new()),
            cost_desc: Desc::new(
                name("cost_usd_total"),
                "Settled cost at batch prices, USD.".into(),
                labels.clone(),
                Default::default(),
            )?,
            list_desc: Desc::new(
                name("list_cost_usd_total"),
                "The same tokens at standard (non-batch) prices, USD.".into(),
                labels,
                Default::default(),
            )?,
        })
    }

    pub(super) fn add(&self, project: &str, provider: &str, model: &str, cost: Money, list: Money) {
        let mut t = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        let e = t.entry([project.into(), provider.into(), model.into()]).or_default();
        e.0 += cost;
        e.1 += list;
    }

    pub(super) fn total(&self) -> Money {
        self.totals.lock().unwrap_or_else(|e| e.into_inner()).values().map(|v| v.0).sum()
    }
}

pub(super) struct MoneyCollector(pub(super) std::sync::Arc<MoneyCounters>);

impl Collector for MoneyCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0.cost_desc, &self.0.list_desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let totals = self.0.totals.lock().unwrap_or_else(|e| e.into_inner());
        let family = |desc: &Desc, pick: fn(&(Money, Money)) -> Money| {
            let mut mf = MetricFamily::default();
            mf.set_name(desc.fq_name.clone());
            mf.set_help(desc.help.clone());
            mf.set_field_type(MetricType::COUNTER);
            for (labels, v) in totals.iter() {
                let pairs = ["project", "provider", "model"]
                    .iter()
                    .zip(labels.iter())
                    .map(|(k, v)| {
                        let mut p = proto::LabelPair::default();
                        p.set_name(k.to_string());
                        p.set_value(v.clone());
                        p
                    })
                    .collect();
                let mut c = proto::Counter::default();
                c.set_value(pick(v).to_f64_usd());
                let mut m = proto::Metric::from_label(pairs);
                m.set_counter(c);
                mf.mut_metric().push(m);
            }
            mf
        };
        if totals.is_empty() {
            return Vec::new();
        }
        vec![family(&self.0.cost_desc, |v| v.0), family(&self.0.list_desc, |v| v.1)]
    }
}
