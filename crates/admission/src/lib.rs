//! Bandwidth admission for the softswitch: a call is admitted only when
//! every site link its media crosses has room for it.
//!
//! # The model
//!
//! Customers reach the PBX over their office internet line. A **site** is
//! such a location: the networks its phones are seen from and the capacity
//! of its link, up (leaving the site) and down (arriving), in kbps, plus an
//! optional limit on concurrent calls. Addresses that no site claims belong
//! to the **default site**, unlimited unless configured ([`sites`]).
//!
//! Every call's media is relayed through the PBX, so it crosses the link of
//! the caller's site and the link of the callee's site. Each crossing is a
//! **leg**: `(site, up kbps, down kbps)`. A call between two phones of one
//! site crosses that link twice, once each way, and reserves twice: 200 kbps
//! up and 200 down at the 100 kbps floor.
//!
//! What a call needs per direction comes from its negotiated media lines
//! ([`bandwidth`]): codec payload at its packet time plus IP/UDP/RTP and
//! layer-2 headers, for every active audio and video line, plus RTCP at 5%
//! (RFC 3550). G.711 at 20 ms is 87.2 kbps on Ethernet, 91.56 with RTCP;
//! G.729 at 20 ms is 31.2 kbps, 32.76 with RTCP. The reservation is never
//! below the per-call floor of 100 kbps (configurable upwards only).
//!
//! [`Admission`] holds the books: per site the kbps reserved each way, the
//! calls in progress and the refusals. [`Admission::reserve`] is all or
//! nothing over a call's legs; [`Admission::adjust`] re-runs it for a
//! re-INVITE (decreases always pass); [`Admission::release`] gives it all
//! back, exactly once. A [`Refusal`] names the site, the direction, what
//! was needed and what was free, and renders the text of a SIP
//! `Warning: 370` header.
//!
//! The crate is pure: no I/O, no clock, no dependency on the rest of the
//! project. It takes plain data and is driven from one thread.
//!
//! ```
//! use admission::{Admission, Estimator, Leg, MediaLine, Site, Sites};
//!
//! let sites = Sites::new(vec![Site {
//!     name: "geneva-office".into(),
//!     networks: vec!["192.0.2.0/24".parse().unwrap()],
//!     down_kbps: 1000,
//!     up_kbps: 300,
//!     max_calls: None,
//! }])
//! .unwrap();
//! let geneva = sites.lookup("192.0.2.10".parse().unwrap());
//! let kbps = Estimator::default().reservation_kbps(&[MediaLine::audio(&[0, 8])]);
//! assert_eq!(kbps, 100);
//!
//! let mut admission = Admission::new(&sites);
//! // Two phones of the same site: the link is crossed twice.
//! let legs = [Leg::symmetric(geneva, kbps), Leg::symmetric(geneva, kbps)];
//! admission.reserve(1, &legs).unwrap();
//! let refusal = admission.reserve(2, &legs).unwrap_err();
//! assert_eq!(
//!     refusal.warning_text(),
//!     "Insufficient bandwidth at site geneva-office: need 200 kbps up, 100 free"
//! );
//! assert!(admission.release(1));
//! assert!(!admission.release(1));
//! ```

pub mod admission;
pub mod bandwidth;
pub mod sites;

pub use admission::{Admission, Leg, Refusal, Reservation, SiteUsage, MAX_LEGS};
pub use bandwidth::{
    BandwidthConfig, BandwidthConfigError, CallBandwidth, CodecRate, Estimator, IpVersion,
    MediaKind, MediaLine, RtpMap, MIN_FLOOR_KBPS,
};
pub use sites::{
    Cidr, CidrError, Direction, Limits, Site, SiteError, SiteId, SiteInfo, SiteSpec, Sites,
    DEFAULT_SITE_NAME,
};
