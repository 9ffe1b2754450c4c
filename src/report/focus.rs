//! FinOps FOCUS 1.2 export: one `Usage` row per batch, model and token class (plus a web
//! search row where searches were billed, and an `Adjustment` row for any part of the
//! settled cost no class explains, such as the US inference-geo uplift), so that
//! `sum(BilledCost)` is the ledger's cost to the pico-dollar. Token rows are priced per
//! million tokens, the unit of the provider's price list, and `PricingQuantity x
//! ListUnitPrice = ListCost` holds exactly.

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::ReportError;
use super::cells::{self, scaled, usd};
use super::render::Encoder;
use super::split::{ChargeClass, ClassCharge, split};
use crate::budgets::window;
use crate::config::Period;
use crate::ledger::SpendRow;
use crate::money::Money;
use crate::pricing::{CostPair, PriceTable, ResolvedPrice};

/// The columns, in output order: the 21 mandatory ones first.
pub const COLUMNS: [&str; 47] = [
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ChargeFrequency",
    "InvoiceId",
    "ServiceSubcategory",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ListUnitPrice",
    "ContractedUnitPrice",
    "PricingCategory",
    "SubAccountId",
    "SubAccountName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "RegionId",
    "RegionName",
    "AvailabilityZone",
    "Tags",
    "SkuId",
    "SkuPriceId",
    "SkuMeter",
    "SkuPriceDetails",
    "PricingCurrency",
    "PricingCurrencyListUnitPrice",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "CommitmentDiscountStatus",
];

/// Names a provider shows on its invoice and its batch service.
fn provider_names(provider: &str) -> (String, String) {
    match provider {
        "anthropic" => ("Anthropic".into(), "Claude API Message Batches".into()),
        "openai" => ("OpenAI".into(), "OpenAI Batch API".into()),
        "gemini" => ("Google".into(), "Gemini API Batch Mode".into()),
        other => (other.to_string(), format!("{other} batch API")),
    }
}

/// What the provider calls one batch (FOCUS `ResourceType`).
fn resource_type(provider: &str) -> &'static str {
    match provider {
        "anthropic" => "Message Batch",
        _ => "Batch",
    }
}

/// What is the same on every line of one batch and model.
struct Common {
    provider_id: String,
    provider_name: String,
    service_name: String,
    billing_start: String,
    billing_end: String,
    charge_start: String,
    charge_end: String,
    project: String,
    resource: String,
    sku_base: String,
    model: String,
}

/// The FOCUS encoder: needs the price table for per-class unit prices.
pub struct FocusEncoder {
    pricing: PriceTable,
    tz: TimeZone,
    /// Prices resolved today, by model: entries change by UTC date, rows come in order.
    prices: HashMap<String, Option<ResolvedPrice>>,
    prices_day: Option<Date>,
}

impl FocusEncoder {
    pub fn new(pricing: PriceTable, tz: TimeZone) -> Self {
        FocusEncoder { pricing, tz, prices: HashMap::new(), prices_day: None }
    }

    fn price(&mut self, model: &str, at: Timestamp) -> Option<ResolvedPrice> {
        let day = at.to_zoned(TimeZone::UTC).date();
        if self.prices_day != Some(day) {
            self.prices.clear();
            self.prices_day = Some(day);
        }
        if !self.prices.contains_key(model) {
            self.prices.insert(model.to_string(), self.pricing.resolve(model, at));
        }
        self.prices.get(model).cloned().flatten()
    }

    fn common(&self, row: &SpendRow) -> Common {
        let month = window(Period::Month, &self.tz, row.submitted_at);
        let start = floor_second(row.submitted_at);
        let ended = row.ended_at.or(row.settled_at).unwrap_or(row.submitted_at);
        // The charge period is [submitted, ended), whole seconds, never empty.
        let one = jiff::SignedDuration::from_secs(1);
        let end = ceil_second(ended).max(start.checked_add(one).unwrap_or(start));
        let (provider_name, service_name) = provider_names(&row.provider);
        Common {
            provider_id: row.provider.clone(),
            provider_name,
            service_name,
            billing_start: utc(month.start),
            billing_end: utc(month.end),
            charge_start: utc(start),
            charge_end: utc(end),
            project: row.project.clone(),
            resource: row.upstream_id.clone().unwrap_or_else(|| row.sub_id.clone()),
            sku_base: format!("{}/{}", row.provider, row.usage.model),
            model: row.usage.model.clone(),
        }
    }
}

impl Encoder for FocusEncoder {
    fn begin(&mut self, out: &mut Vec<u8>) {
        cells::record(out, COLUMNS.map(Some));
    }

    fn row(&mut self, row: &SpendRow, out: &mut Vec<u8>) -> Result<(), ReportError> {
        let u = &row.usage;
        let Some(price) = self.price(&u.model, row.submitted_at) else {
            if u.cost == Money::ZERO && u.list_cost == Money::ZERO {
                // Requests that never ran (errored, expired) under a model with no price.
                return Ok(());
            }
            return Err(ReportError::Unpriced {
                batch: row.upstream_id.clone().unwrap_or_else(|| row.sub_id.clone()),
                model: u.model.clone(),
            });
        };
        let parts = split(u, &price);
        if parts.lines.is_empty() && parts.remainder.is_none() {
            return Ok(());
        }
        let c = self.common(row);
        let since = price.effective_from;
        for l in &parts.lines {
            usage_line(out, &c, l, since);
        }
        if let Some(rest) = parts.remainder {
            adjustment_line(out, &c, rest);
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}
}

/// The cells that differ between lines of one batch and model.
#[derive(Default)]
struct Line<'a> {
    category: &'a str,
    billed: String,
    list: String,
    description: String,
    pricing_quantity: Option<String>,
    pricing_unit: Option<&'a str>,
    consumed_quantity: Option<String>,
    consumed_unit: Option<&'a str>,
    list_unit_price: Option<String>,
    contracted_unit_price: Option<String>,
    sku: Option<String>,
    sku_price: Option<String>,
    meter: Option<&'a str>,
    details: Option<String>,
}

/// Token lines are priced per million tokens, web searches per thousand, as the price
/// list states them; the decimals stay exact either way.
fn usage_line(out: &mut Vec<u8>, c: &Common, l: &ClassCharge, since: Date) {
    let (unit, scale, consumed_unit) = match l.class {
        ChargeClass::Tokens(_) => ("1000000 Tokens", 6, "Tokens"),
        ChargeClass::WebSearch => ("1000 Requests", 3, "Requests"),
    };
    let per_unit = |rate: Money| scaled(rate.picos() * 10i128.pow(scale), 12);
    let class = l.class.as_str();
    let sku = format!("{}/{class}", c.sku_base);
    let description = match l.class {
        ChargeClass::Tokens(_) => {
            format!("{} {} tokens at batch price", c.model, class.replace('_', " "))
        }
        ChargeClass::WebSearch => format!("{} web searches at batch price", c.model),
    };
    let line = Line {
        category: "Usage",
        billed: usd(l.cost.cost),
        list: usd(l.cost.list_cost),
        description,
        pricing_quantity: Some(scaled(i128::from(l.quantity), scale)),
        pricing_unit: Some(unit),
        consumed_quantity: Some(scaled(i128::from(l.quantity), 0)),
        consumed_unit: Some(consumed_unit),
        list_unit_price: Some(per_unit(l.list_rate)),
        contracted_unit_price: Some(per_unit(l.rate)),
        sku_price: Some(format!("{sku}/batch/{since}")),
        sku: Some(sku),
        meter: Some(l.class.meter()),
        details: Some(format!(
            "{{\"x_UsageClass\":\"{class}\",\"x_PriceEffectiveFrom\":\"{since}\"}}"
        )),
    };
    write_line(out, c, &line);
}

/// Cost the token classes do not explain: not usage of a priced unit, so no quantity.
fn adjustment_line(out: &mut Vec<u8>, c: &Common, rest: CostPair) {
    let line = Line {
        category: "Adjustment",
        billed: usd(rest.cost),
        list: usd(rest.list_cost),
        description: format!(
            "{} settled cost not attributable to one token class (US inference-geo uplift)",
            c.model
        ),
        sku: Some(format!("{}/geo_us_uplift", c.sku_base)),
        meter: Some("US Inference-Geo Uplift"),
        ..Line::default()
    };
    write_line(out, c, &line);
}

fn write_line(out: &mut Vec<u8>, c: &Common, l: &Line<'_>) {
    let provider = Some(c.provider_name.as_str());
    let project = Some(c.project.as_str());
    let resource = Some(c.resource.as_str());
    let billed = Some(l.billed.as_str());
    let usd = Some("USD");
    let list_unit_price = l.list_unit_price.as_deref();
    let contracted_unit_price = l.contracted_unit_price.as_deref();
    let row: [Option<&str>; 47] = [
        billed,                              // BilledCost
        Some(&c.provider_id),                // BillingAccountId
        provider,                            // BillingAccountName
        usd,                                 // BillingCurrency
        Some(&c.billing_start),              // BillingPeriodStart
        Some(&c.billing_end),                // BillingPeriodEnd
        Some(l.category),                    // ChargeCategory
        None,                                // ChargeClass
        Some(&l.description),                // ChargeDescription
        Some(&c.charge_start),               // ChargePeriodStart
        Some(&c.charge_end),                 // ChargePeriodEnd
        billed,                              // ContractedCost
        billed,                              // EffectiveCost
        provider,                            // InvoiceIssuerName
        Some(&l.list),                       // ListCost
        l.pricing_quantity.as_deref(),       // PricingQuantity
        l.pricing_unit,                      // PricingUnit
        provider,                            // ProviderName
        provider,                            // PublisherName
        Some("AI and Machine Learning"),     // ServiceCategory
        Some(&c.service_name),               // ServiceName
        Some("Usage-Based"),                 // ChargeFrequency
        None,                                // InvoiceId
        Some("Generative AI"),               // ServiceSubcategory
        l.consumed_quantity.as_deref(),      // ConsumedQuantity
        l.consumed_unit,                     // ConsumedUnit
        list_unit_price,                     // ListUnitPrice
        contracted_unit_price,               // ContractedUnitPrice
        Some("Standard"),                    // PricingCategory
        project,                             // SubAccountId
        project,                             // SubAccountName
        resource,                            // ResourceId
        resource,                            // ResourceName
        Some(resource_type(&c.provider_id)), // ResourceType
        None,                                // RegionId
        None,                                // RegionName
        None,                                // AvailabilityZone
        None,                                // Tags
        l.sku.as_deref(),                    // SkuId
        l.sku_price.as_deref(),              // SkuPriceId
        l.meter,                             // SkuMeter
        l.details.as_deref(),                // SkuPriceDetails
        usd,                                 // PricingCurrency
        list_unit_price,                     // PricingCurrencyListUnitPrice
        contracted_unit_price,               // PricingCurrencyContractedUnitPrice
        billed,                              // PricingCurrencyEffectiveCost
        None,                                // CommitmentDiscountStatus
    ];
    cells::record(out, row);
}

fn utc(t: Timestamp) -> String {
    format!("{:.0}", t)
}

fn floor_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn ceil_second(t: Timestamp) -> Timestamp {
    let s = floor_second(t);
    if s == t { t } else { s.checked_add(jiff::SignedDuration::from_secs(1)).unwrap_or(t) }
}
