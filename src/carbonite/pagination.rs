//! Paging through an inbound Endpoint (SPEC §2): styles `none`, `pageNumber`, `offset` and
//! `nextLink`, as a pure state machine — the client asks for the first page's parameters, then
//! hands each page back and is told what to fetch next or to stop.
//!
//! Stop rules: after the one page of `none`; on an empty page; when the items seen reach the
//! total (when `total` is given and the page carries it); on a short page (fewer items than
//! `size`) — unless a total says items are still missing, in which case paging goes on (a
//! server that caps the page size below ours is then still read completely); for `nextLink`,
//! when the link is absent, null or empty. A listing that ends with fewer items than the last
//! total announced is an error, as is a `nextLink` seen twice, a page identical to the previous
//! one (a server ignoring the page parameter), or more than [`MAX_PAGES`] pages.

use std::collections::HashSet;

use serde_json::Value;

use crate::config::model::{Pagination, PaginationStyle};

/// Paging stops with an error after this many pages.
pub const MAX_PAGES: u64 = 100_000;

/// What to request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageRequest {
    /// The endpoint's own URL with these query parameters added.
    Params(Vec<(String, String)>),
    /// A link taken from the previous page (absolute, or relative to the previous request).
    Link(String),
}

/// Why paging failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaginationError {
    /// The same `nextLink` came back twice.
    #[error("the next-page link {link:?} was already followed: the server is looping")]
    LinkLoop { link: String },
    /// The next link is not a string.
    #[error("the next-page link at {pointer} is not a string")]
    BadLink { pointer: String },
    /// A page identical to the one before.
    #[error(
        "page {page} repeats the previous page: the server seems to ignore the `{param}` parameter"
    )]
    RepeatedPage { page: u64, param: String },
    /// The listing ended short of the total.
    #[error("the listing ended after {seen} items but the server announced {total}")]
    Incomplete { seen: u64, total: u64 },
    /// Too many pages.
    #[error("more than {MAX_PAGES} pages")]
    TooManyPages,
}

/// The paging state of one listing.
#[derive(Debug)]
pub struct Pager<'a> {
    p: &'a Pagination,
    pages: u64,
    seen: u64,
    last_total: Option<u64>,
    links: HashSet<String>,
    previous_page: Option<u64>,
}

/// The number at JSON pointer `pointer` of `body`, if there is one.
pub fn total_at(body: &Value, pointer: &str) -> Option<u64> {
    match body.pointer(pointer)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl<'a> Pager<'a> {
    /// Start a listing.
    pub fn new(p: &'a Pagination) -> Self {
        Pager {
            p,
            pages: 0,
            seen: 0,
            last_total: None,
            links: HashSet::new(),
            previous_page: None,
        }
    }

    /// Items seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Pages handed back so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The last total a page announced.
    pub fn total(&self) -> Option<u64> {
        self.last_total
    }

    fn size_param(&self) -> Option<(String, String)> {
        match (&self.p.size_param, self.p.size) {
            (Some(param), Some(size)) => Some((param.clone(), size.to_string())),
            _ => None,
        }
    }

    /// Parameters of the first page.
    pub fn first(&self) -> PageRequest {
        let mut params = Vec::new();
        if matches!(
            self.p.style,
            PaginationStyle::PageNumber | PaginationStyle::Offset
        ) && let Some(param) = &self.p.param
        {
            params.push((param.clone(), self.p.start.to_string()));
        }
        params.extend(self.size_param());
        PageRequest::Params(params)
    }

    /// Hand back a page: its body, how many items it held and a fingerprint of them (equal
    /// fingerprints mean equal pages). Returns the next request, or `None` when done.
    pub fn next(
        &mut self,
        body: &Value,
        items: usize,
        fingerprint: u64,
    ) -> Result<Option<PageRequest>, PaginationError> {
        self.pages += 1;
        let items = items as u64;
        self.seen += items;
        if let Some(ptr) = &self.p.total
            && let Some(total) = total_at(body, ptr)
        {
            self.last_total = Some(total);
        }
        if self.p.style == PaginationStyle::None {
            return Ok(None);
        }
        let missing = self.last_total.is_some_and(|t| self.seen < t);
        if items == 0 {
            return match self.last_total {
                Some(total) if self.seen < total => Err(PaginationError::Incomplete {
                    seen: self.seen,
                    total,
                }),
                _ => Ok(None),
            };
        }
        if self.last_total.is_some() && !missing {
            return Ok(None);
        }
        let short = self.p.size.is_some_and(|s| items < u64::from(s));
        if short && !missing {
            return Ok(None);
        }
        if self.pages >= MAX_PAGES {
            return Err(PaginationError::TooManyPages);
        }
        match self.p.style {
            PaginationStyle::None => Ok(None),
            PaginationStyle::PageNumber | PaginationStyle::Offset => {
                let param = self.p.param.clone().unwrap_or_default();
                if self.previous_page == Some(fingerprint) {
                    return Err(PaginationError::RepeatedPage {
                        page: self.pages,
                        param,
                    });
                }
                self.previous_page = Some(fingerprint);
                let value = if self.p.style == PaginationStyle::PageNumber {
                    self.p.start.saturating_add(self.pages as i64)
                } else {
                    self.p.start.saturating_add(self.seen as i64)
                };
                let mut params = vec![(param, value.to_string())];
                params.extend(self.size_param());
                Ok(Some(PageRequest::Params(params)))
            }
            PaginationStyle::NextLink => {
                let pointer = self.p.next.clone().unwrap_or_default();
                let link = match body.pointer(&pointer) {
                    None | Some(Value::Null) => return Ok(None),
                    Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
                    Some(Value::String(s)) => s.trim().to_string(),
                    Some(_) => return Err(PaginationError::BadLink { pointer }),
                };
                if !self.links.insert(link.clone()) {
                    return Err(PaginationError::LinkLoop { link });
                }
                Ok(Some(PageRequest::Link(link)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pagination(style: PaginationStyle) -> Pagination {
        Pagination {
            style,
            param: Some("pageNumber".into()),
            start: 1,
            size_param: Some("pageSize".into()),
            size: Some(2),
            total: None,
            next: None,
        }
    }

    fn params(r: Option<PageRequest>) -> Vec<(String, String)> {
        match r {
            Some(PageRequest::Params(p)) => p,
            other => panic!("{other:?}"),
        }
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn none_is_one_page() {
        let p = Pagination {
            style: PaginationStyle::None,
            param: None,
            start: 0,
            size_param: None,
            size: None,
            total: None,
            next: None,
        };
        let mut pager = Pager::new(&p);
        assert_eq!(pager.first(), PageRequest::Params(vec![]));
        assert_eq!(pager.next(&json!({}), 7, 1).unwrap(), None);
        assert_eq!(pager.seen(), 7);
    }

    #[test]
    fn page_number_stops_on_a_short_last_page() {
        let p = pagination(PaginationStyle::PageNumber);
        let mut pager = Pager::new(&p);
        assert_eq!(
            pager.first(),
            PageRequest::Params(vec![kv("pageNumber", "1"), kv("pageSize", "2")])
        );
        assert_eq!(
            params(pager.next(&json!({}), 2, 1).unwrap()),
            vec![kv("pageNumber", "2"), kv("pageSize", "2")]
        );
        assert_eq!(
            params(pager.next(&json!({}), 2, 2).unwrap()),
            vec![kv("pageNumber", "3"), kv("pageSize", "2")]
        );
        assert_eq!(pager.next(&json!({}), 1, 3).unwrap(), None);
        assert_eq!((pager.seen(), pager.pages()), (5, 3));
    }

    #[test]
    fn page_number_stops_on_an_empty_page() {
        let p = pagination(PaginationStyle::PageNumber);
        let mut pager = Pager::new(&p);
        pager.next(&json!({}), 2, 1).unwrap().unwrap();
        assert_eq!(pager.next(&json!({}), 0, 0).unwrap(), None);
        assert_eq!(pager.seen(), 2);
        // An empty first page is an empty listing.
        let mut pager = Pager::new(&p);
        assert_eq!(pager.next(&json!({"Users": []}), 0, 0).unwrap(), None);
    }

    #[test]
    fn total_stops_on_a_full_last_page_and_catches_short_listings() {
        let mut p = pagination(PaginationStyle::PageNumber);
        p.total = Some("/TotalCount".into());
        let mut pager = Pager::new(&p);
        pager
            .next(&json!({"TotalCount": 4}), 2, 1)
            .unwrap()
            .unwrap();
        // Seen 4 of 4: no request for an empty page 3.
        assert_eq!(pager.next(&json!({"TotalCount": 4}), 2, 2).unwrap(), None);

        // The server caps pages at 1 item: short pages, but the total says go on.
        let mut pager = Pager::new(&p);
        for page in 2..=3 {
            assert_eq!(
                params(pager.next(&json!({"TotalCount": "3"}), 1, page).unwrap())[0],
                kv("pageNumber", &page.to_string())
            );
        }
        assert_eq!(pager.next(&json!({"TotalCount": 3}), 1, 9).unwrap(), None);

        // An empty page before the total is reached.
        let mut pager = Pager::new(&p);
        pager
            .next(&json!({"TotalCount": 5}), 2, 1)
            .unwrap()
            .unwrap();
        assert_eq!(
            pager.next(&json!({"TotalCount": 5}), 0, 0).unwrap_err(),
            PaginationError::Incomplete { seen: 2, total: 5 }
        );
    }

    #[test]
    fn offset_advances_by_items_seen() {
        let p = Pagination {
            style: PaginationStyle::Offset,
            param: Some("skip".into()),
            start: 0,
            size_param: Some("take".into()),
            size: Some(3),
            total: None,
            next: None,
        };
        let mut pager = Pager::new(&p);
        assert_eq!(
            pager.first(),
            PageRequest::Params(vec![kv("skip", "0"), kv("take", "3")])
        );
        assert_eq!(
            params(pager.next(&json!([]), 3, 1).unwrap()),
            vec![kv("skip", "3"), kv("take", "3")]
        );
        assert_eq!(
            params(pager.next(&json!([]), 3, 2).unwrap()),
            vec![kv("skip", "6"), kv("take", "3")]
        );
        assert_eq!(pager.next(&json!([]), 0, 0).unwrap(), None);
    }

    #[test]
    fn offset_without_size_reads_until_an_empty_page() {
        let p = Pagination {
            style: PaginationStyle::Offset,
            param: Some("offset".into()),
            start: 10,
            size_param: None,
            size: None,
            total: None,
            next: None,
        };
        let mut pager = Pager::new(&p);
        assert_eq!(pager.first(), PageRequest::Params(vec![kv("offset", "10")]));
        assert_eq!(
            params(pager.next(&json!([]), 1, 1).unwrap()),
            vec![kv("offset", "11")]
        );
        assert_eq!(pager.next(&json!([]), 0, 0).unwrap(), None);
    }

    #[test]
    fn a_repeated_page_is_an_error() {
        let p = pagination(PaginationStyle::PageNumber);
        let mut pager = Pager::new(&p);
        pager.next(&json!({}), 2, 42).unwrap().unwrap();
        assert_eq!(
            pager.next(&json!({}), 2, 42).unwrap_err(),
            PaginationError::RepeatedPage {
                page: 2,
                param: "pageNumber".into()
            }
        );
    }

    #[test]
    fn next_link_follows_until_absent() {
        let p = Pagination {
            style: PaginationStyle::NextLink,
            param: None,
            start: 0,
            size_param: Some("limit".into()),
            size: Some(2),
            total: None,
            next: Some("/links/next".into()),
        };
        let mut pager = Pager::new(&p);
        assert_eq!(pager.first(), PageRequest::Params(vec![kv("limit", "2")]));
        assert_eq!(
            pager
                .next(&json!({"links": {"next": "/api/users?cursor=b"}}), 2, 1)
                .unwrap(),
            Some(PageRequest::Link("/api/users?cursor=b".into()))
        );
        assert_eq!(
            pager
                .next(&json!({"links": {"next": "/api/users?cursor=c"}}), 2, 2)
                .unwrap(),
            Some(PageRequest::Link("/api/users?cursor=c".into()))
        );
        assert_eq!(
            pager.next(&json!({"links": {"next": null}}), 2, 3).unwrap(),
            None
        );
        let mut pager = Pager::new(&p);
        assert_eq!(pager.next(&json!({"links": {}}), 2, 1).unwrap(), None);
        let mut pager = Pager::new(&p);
        assert_eq!(
            pager.next(&json!({"links": {"next": " "}}), 2, 1).unwrap(),
            None
        );
        let mut pager = Pager::new(&p);
        assert_eq!(
            pager
                .next(&json!({"links": {"next": 3}}), 2, 1)
                .unwrap_err(),
            PaginationError::BadLink {
                pointer: "/links/next".into()
            }
        );
        // A short page ends the listing even when a link is present.
        let mut pager = Pager::new(&p);
        assert_eq!(
            pager.next(&json!({"links": {"next": "/x"}}), 1, 1).unwrap(),
            None
        );
    }

    #[test]
    fn next_link_loop_is_an_error_not_an_endless_listing() {
        let p = Pagination {
            style: PaginationStyle::NextLink,
            param: None,
            start: 0,
            size_param: None,
            size: None,
            total: None,
            next: Some("/next".into()),
        };
        let mut pager = Pager::new(&p);
        let page = json!({"next": "https://h/api/users?page=2"});
        assert!(pager.next(&page, 5, 1).unwrap().is_some());
        let page3 = json!({"next": "https://h/api/users?page=3"});
        assert!(pager.next(&page3, 5, 2).unwrap().is_some());
        assert_eq!(
            pager.next(&page, 5, 3).unwrap_err(),
            PaginationError::LinkLoop {
                link: "https://h/api/users?page=2".into()
            }
        );
    }
}
