//! A realistic synthetic rates data set for the embedded default, so a newcomer's first
//! `/rates` query returns real-looking answers: a region tree, real UN/LOCODE ports, and
//! several months of daily container prices per lane (trend + noise, a few thin days).

use chrono::{Days, NaiveDate};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::catalog::{Port, Region};
use super::dump::{Dump, PriceRow};

const REGIONS: &[(&str, &str, Option<&str>)] = &[
    ("china_main", "China Main", None),
    ("china_north_main", "China North Main", Some("china_main")),
    ("china_east_main", "China East Main", Some("china_main")),
    ("china_south_main", "China South Main", Some("china_main")),
    ("southeast_asia", "Southeast Asia", None),
    ("northern_europe", "Northern Europe", None),
    (
        "north_europe_main",
        "North Europe Main",
        Some("northern_europe"),
    ),
    ("uk_main", "UK Main", Some("north_europe_main")),
    ("scandinavia", "Scandinavia", Some("northern_europe")),
    ("kattegat", "Kattegat", Some("scandinavia")),
    ("norway_south", "Norway South", Some("scandinavia")),
    ("baltic", "Baltic", Some("northern_europe")),
    ("finland_main", "Finland Main", Some("baltic")),
    ("poland_main", "Poland Main", Some("baltic")),
    ("baltic_main", "Baltic Main", Some("baltic")),
    ("north_america", "North America", None),
    ("us_east_coast", "US East Coast", Some("north_america")),
    ("us_west_coast", "US West Coast", Some("north_america")),
];

/// (code, name, region, trade area)
const PORTS: &[(&str, &str, &str, Area)] = &[
    ("CNTXG", "Tianjin Xingang", "china_north_main", Area::Asia),
    ("CNDLC", "Dalian", "china_north_main", Area::Asia),
    ("CNTAO", "Qingdao", "china_north_main", Area::Asia),
    ("CNSGH", "Shanghai", "china_east_main", Area::Asia),
    ("CNNGB", "Ningbo", "china_east_main", Area::Asia),
    ("CNXMN", "Xiamen", "china_south_main", Area::Asia),
    ("CNYTN", "Yantian", "china_south_main", Area::Asia),
    ("CNGGZ", "Guangzhou", "china_south_main", Area::Asia),
    ("SGSIN", "Singapore", "southeast_asia", Area::Asia),
    ("MYPKG", "Port Klang", "southeast_asia", Area::Asia),
    ("VNSGN", "Ho Chi Minh City", "southeast_asia", Area::Asia),
    ("NLRTM", "Rotterdam", "north_europe_main", Area::Europe),
    ("BEANR", "Antwerp", "north_europe_main", Area::Europe),
    ("DEHAM", "Hamburg", "north_europe_main", Area::Europe),
    ("DEBRV", "Bremerhaven", "north_europe_main", Area::Europe),
    ("FRLEH", "Le Havre", "north_europe_main", Area::Europe),
    ("GBFXT", "Felixstowe", "uk_main", Area::Europe),
    ("GBSOU", "Southampton", "uk_main", Area::Europe),
    ("GBLGP", "London Gateway", "uk_main", Area::Europe),
    ("DKAAR", "Aarhus", "kattegat", Area::Europe),
    ("SEGOT", "Gothenburg", "kattegat", Area::Europe),
    ("NOOSL", "Oslo", "norway_south", Area::Europe),
    ("NOSVG", "Stavanger", "norway_south", Area::Europe),
    ("FIHEL", "Helsinki", "finland_main", Area::Europe),
    ("FIKTK", "Kotka", "finland_main", Area::Europe),
    ("PLGDN", "Gdansk", "poland_main", Area::Europe),
    ("EETLL", "Tallinn", "baltic_main", Area::Europe),
    ("LVRIX", "Riga", "baltic_main", Area::Europe),
    ("LTKLJ", "Klaipeda", "baltic_main", Area::Europe),
    ("USNYC", "New York", "us_east_coast", Area::America),
    ("USSAV", "Savannah", "us_east_coast", Area::America),
    ("USLAX", "Los Angeles", "us_west_coast", Area::America),
    ("USLGB", "Long Beach", "us_west_coast", Area::America),
    ("USOAK", "Oakland", "us_west_coast", Area::America),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Area {
    Asia,
    Europe,
    America,
}

/// (share of lanes served, typical USD per 40' container)
fn trade(from: Area, to: Area) -> Option<(f64, f64)> {
    match (from, to) {
        (Area::Asia, Area::Europe) => Some((0.6, 1500.0)),
        (Area::Asia, Area::America) => Some((0.7, 2100.0)),
        (Area::Europe, Area::Asia) => Some((0.25, 650.0)),
        (Area::America, Area::Asia) => Some((0.25, 800.0)),
        (Area::Europe, Area::America) => Some((0.2, 1700.0)),
        _ => None,
    }
}

/// Generates `days` days of prices ending on `last_day`, reproducibly for a `seed`.
pub fn generate(last_day: NaiveDate, days: u32, seed: u64) -> Dump {
    let mut rng = SmallRng::seed_from_u64(seed);
    let regions = REGIONS
        .iter()
        .map(|(slug, name, parent)| Region {
            slug: slug.to_string(),
            name: name.to_string(),
            parent_slug: parent.map(str::to_string),
        })
        .collect();
    let ports = PORTS
        .iter()
        .map(|(code, name, region, _)| Port {
            code: code.to_string(),
            name: name.to_string(),
            parent_slug: region.to_string(),
        })
        .collect();
    let first_day = last_day - Days::new(u64::from(days.saturating_sub(1)));
    let mut prices = Vec::new();
    for (orig, _, _, from) in PORTS {
        for (dest, _, _, to) in PORTS {
            let Some((share, base)) = trade(*from, *to) else {
                continue;
            };
            if !rng.random_bool(share) {
                continue;
            }
            // Each lane: its own level, a mean-reverting daily trend, and a few carriers
            // quoting around it every day (sometimes fewer than three, as in real data).
            let level = base * rng.random_range(0.8..1.25);
            let carriers = rng.random_range(2..=6u32);
            let mut trend = 1.0f64;
            for d in 0..days {
                trend =
                    (trend + rng.random_range(-0.02..0.02) + (1.0 - trend) * 0.05).clamp(0.6, 1.6);
                let day = first_day + Days::new(u64::from(d));
                let quotes = if rng.random_bool(0.08) {
                    rng.random_range(0..=2)
                } else {
                    carriers
                };
                for _ in 0..quotes {
                    let price = level * trend * rng.random_range(0.9..1.1);
                    prices.push(PriceRow {
                        orig_code: orig.to_string(),
                        dest_code: dest.to_string(),
                        day,
                        price: price.round() as i32,
                    });
                }
            }
        }
    }
    Dump {
        regions,
        ports,
        prices,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rates::catalog::Catalog;

    #[test]
    fn is_reproducible_consistent_and_sizeable() {
        let last = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let a = generate(last, 120, 7);
        let b = generate(last, 120, 7);
        assert_eq!(a.prices, b.prices);
        assert!(a.prices.len() > 20_000, "{} prices", a.prices.len());
        assert!(a.prices.iter().all(|p| p.price > 0 && p.day <= last));
        let catalog = Catalog::new(a.regions.clone(), a.ports.clone());
        for p in &a.prices {
            assert!(catalog.has_port(&p.orig_code) && catalog.has_port(&p.dest_code));
        }
        assert!(
            catalog
                .resolve("northern_europe")
                .unwrap()
                .port_codes()
                .len()
                >= 10
        );
        // Thin days exist, so the null-price rule shows up in the demo too.
        let mut per_day = std::collections::HashMap::new();
        for p in &a.prices {
            *per_day
                .entry((&p.orig_code, &p.dest_code, p.day))
                .or_insert(0) += 1;
        }
        assert!(per_day.values().any(|&n| n < 3));
    }
}
