//! Granular local search (HGS-CVRP, Vidal 2022): for every customer `u` and each of its
//! correlated neighbours `v`, try relocations, swaps and 2-opt variants, applying the first one
//! that lowers the penalised cost, until no move improves.
//!
//! Inter-route moves rebuild each route from at most four pieces (a prefix of an existing
//! route, one or two single visits, a suffix), so each is priced in O(1) from cached prefix and
//! suffix segments. Intra-route moves are priced by re-folding the candidate route, O(route
//! length); routes are short, and this keeps the rarely-hit intra cases simple. The *same* piece
//! list that prices an inter-route move is used to apply it, so pricing and applying cannot
//! disagree.

use crate::model::Problem;
use crate::rng::Rng;
use crate::search::segment::{Penalties, Segment};

/// A move is applied only if it saves more than this (penalties are floats).
const EPS: f64 = 1e-6;

/// One building block of a rebuilt route.
#[derive(Debug, Clone, Copy)]
enum Piece {
    /// The depot followed by the first `k` customers of route `r`.
    Prefix(usize, usize),
    /// One visit.
    Visit(u32),
    /// Customers `k..` of route `r`, then the depot.
    Suffix(usize, usize),
}

pub struct LocalSearch<'p> {
    p: &'p Problem,
    /// Granular neighbourhood, per node index (empty for the depot and inactive customers).
    neighbours: Vec<Vec<u32>>,
    customers: Vec<u32>,
    routes: Vec<Vec<u32>>,
    prefix: Vec<Vec<Segment>>,
    suffix: Vec<Vec<Segment>>,
    cost: Vec<f64>,
    route_of: Vec<usize>,
    pos: Vec<usize>,
    /// Move counter at the last change of each route.
    modified: Vec<u64>,
    /// Move counter when each customer's neighbourhood was last fully tested.
    tested: Vec<u64>,
    moves: u64,
    pen: Penalties,
    scratch: Vec<u32>,
    scratch_b: Vec<u32>,
}

impl<'p> LocalSearch<'p> {
    pub fn new(
        p: &'p Problem,
        customers: Vec<u32>,
        neighbours: Vec<Vec<u32>>,
        slots: usize,
    ) -> Self {
        let n = p.num_customers() + 1;
        Self {
            p,
            neighbours,
            customers,
            routes: vec![Vec::new(); slots],
            prefix: vec![Vec::new(); slots],
            suffix: vec![Vec::new(); slots],
            cost: vec![0.0; slots],
            route_of: vec![usize::MAX; n],
            pos: vec![0; n],
            modified: vec![0; slots],
            tested: vec![0; n],
            moves: 0,
            pen: Penalties {
                load: 1.0,
                warp: 1.0,
            },
            scratch: Vec::new(),
            scratch_b: Vec::new(),
        }
    }

    pub fn slots(&self) -> usize {
        self.routes.len()
    }

    /// Improves `routes` (at most [`Self::slots`] of them) in place under penalties `pen`.
    pub fn run(&mut self, routes: &mut Vec<Vec<u32>>, pen: Penalties, rng: &mut Rng) {
        assert!(
            routes.len() <= self.routes.len(),
            "more routes than vehicles"
        );
        self.pen = pen;
        for r in 0..self.routes.len() {
            self.routes[r].clear();
            if let Some(src) = routes.get(r) {
                self.routes[r].extend_from_slice(src);
            }
            self.refresh(r);
            self.modified[r] = 0;
        }
        self.moves = 0;
        for c in &self.customers {
            self.tested[*c as usize] = 0;
        }
        let mut order = self.customers.clone();
        rng.shuffle(&mut order);
        for &u in &order {
            let mut nb = std::mem::take(&mut self.neighbours[u as usize]);
            rng.shuffle(&mut nb);
            self.neighbours[u as usize] = nb;
        }

        let mut loop_id = 0u32;
        let mut completed = false;
        while !completed {
            if loop_id > 1 {
                completed = true;
            }
            for &u in &order {
                let last_test = self.tested[u as usize];
                self.tested[u as usize] = self.moves;
                let count = self.neighbours[u as usize].len();
                for k in 0..count {
                    let v = self.neighbours[u as usize][k];
                    let (ru, rv) = (self.route_of[u as usize], self.route_of[v as usize]);
                    if loop_id == 0 || self.modified[ru].max(self.modified[rv]) > last_test {
                        if self.try_pair(u, rv, self.pos[v as usize] + 1) {
                            completed = false;
                            continue;
                        }
                        // Also try inserting at the start of v's route.
                        if self.pos[v as usize] == 0 && self.try_pair(u, rv, 0) {
                            completed = false;
                        }
                    }
                }
                if loop_id > 0
                    && let Some(empty) = self.routes.iter().position(Vec::is_empty)
                    && self.try_pair(u, empty, 0)
                {
                    completed = false;
                }
            }
            loop_id += 1;
        }

        routes.clear();
        routes.extend(self.routes.iter().filter(|r| !r.is_empty()).cloned());
    }

    /// Recomputes the cached data of route `r` after it changed.
    fn refresh(&mut self, r: usize) {
        let p = self.p;
        let route = &self.routes[r];
        let depot = Segment::visit(p, 0);
        let pre = &mut self.prefix[r];
        pre.clear();
        pre.push(depot);
        for (k, &c) in route.iter().enumerate() {
            self.route_of[c as usize] = r;
            self.pos[c as usize] = k;
            let s = pre[k].then(p, &Segment::visit(p, c));
            pre.push(s);
        }
        let suf = &mut self.suffix[r];
        suf.clear();
        suf.resize(route.len() + 1, depot);
        for k in (0..route.len()).rev() {
            suf[k] = Segment::visit(p, route[k]).then(p, &suf[k + 1]);
        }
        self.cost[r] = self
            .pen
            .route_cost(&pre[route.len()].then(p, &depot), p.capacity());
    }

    fn piece_segment(&self, piece: Piece) -> Segment {
        match piece {
            Piece::Prefix(r, k) => self.prefix[r][k],
            Piece::Visit(c) => Segment::visit(self.p, c),
            Piece::Suffix(r, k) => self.suffix[r][k],
        }
    }

    fn pieces_cost(&self, pieces: &[Piece]) -> f64 {
        let mut seg = self.piece_segment(pieces[0]);
        for &piece in &pieces[1..] {
            seg = seg.then(self.p, &self.piece_segment(piece));
        }
        self.pen.route_cost(&seg, self.p.capacity())
    }

    fn materialize(&self, pieces: &[Piece], out: &mut Vec<u32>) {
        out.clear();
        for &piece in pieces {
            match piece {
                Piece::Prefix(r, k) => out.extend_from_slice(&self.routes[r][..k]),
                Piece::Visit(c) => out.push(c),
                Piece::Suffix(r, k) => out.extend_from_slice(&self.routes[r][k..]),
            }
        }
    }

    /// Prices rebuilding route `ra` as `pa` and route `rb` as `pb`; applies it if it improves.
    fn try_inter(&mut self, ra: usize, pa: &[Piece], rb: usize, pb: &[Piece]) -> bool {
        let delta = self.pieces_cost(pa) + self.pieces_cost(pb) - self.cost[ra] - self.cost[rb];
        if delta > -EPS {
            return false;
        }
        let mut a = std::mem::take(&mut self.scratch);
        let mut b = std::mem::take(&mut self.scratch_b);
        self.materialize(pa, &mut a);
        self.materialize(pb, &mut b);
        std::mem::swap(&mut self.routes[ra], &mut a);
        std::mem::swap(&mut self.routes[rb], &mut b);
        self.scratch = a;
        self.scratch_b = b;
        self.commit(&[ra, rb]);
        true
    }

    fn commit(&mut self, changed: &[usize]) {
        self.moves += 1;
        for &r in changed {
            self.refresh(r);
            self.modified[r] = self.moves;
        }
    }

    fn route_cost_of(&self, seq: &[u32]) -> f64 {
        let p = self.p;
        let mut seg = Segment::visit(p, 0);
        for &c in seq {
            seg = seg.then(p, &Segment::visit(p, c));
        }
        seg = seg.then(p, &Segment::visit(p, 0));
        self.pen.route_cost(&seg, p.capacity())
    }

    /// Tries all moves between customer `u` and the insertion point after the first `kv`
    /// customers of route `rv` (`kv == 0`: right after the depot). Applies the first improving
    /// one.
    fn try_pair(&mut self, u: u32, rv: usize, kv: usize) -> bool {
        let ru = self.route_of[u as usize];
        if ru == rv {
            return self.try_intra(u, kv);
        }
        use Piece::{Prefix as P, Suffix as S, Visit as N};
        let i = self.pos[u as usize];
        let mu = self.routes[ru].len();
        let mv = self.routes[rv].len();
        let x = (i + 1 < mu).then(|| self.routes[ru][i + 1]);
        let v = (kv > 0).then(|| self.routes[rv][kv - 1]);
        let y = (kv < mv).then(|| self.routes[rv][kv]);

        // M1: relocate u after v.
        if self.try_inter(
            ru,
            &[P(ru, i), S(ru, i + 1)],
            rv,
            &[P(rv, kv), N(u), S(rv, kv)],
        ) {
            return true;
        }
        if let Some(x) = x {
            // M2 / M3: relocate (u, x) after v, as is or reversed.
            if self.try_inter(
                ru,
                &[P(ru, i), S(ru, i + 2)],
                rv,
                &[P(rv, kv), N(u), N(x), S(rv, kv)],
            ) {
                return true;
            }
            if self.try_inter(
                ru,
                &[P(ru, i), S(ru, i + 2)],
                rv,
                &[P(rv, kv), N(x), N(u), S(rv, kv)],
            ) {
                return true;
            }
        }
        if let Some(v) = v {
            let j = kv - 1;
            // M4: swap u and v.
            if self.try_inter(
                ru,
                &[P(ru, i), N(v), S(ru, i + 1)],
                rv,
                &[P(rv, j), N(u), S(rv, j + 1)],
            ) {
                return true;
            }
            if let Some(x) = x {
                // M5: swap (u, x) and v.
                if self.try_inter(
                    ru,
                    &[P(ru, i), N(v), S(ru, i + 2)],
                    rv,
                    &[P(rv, j), N(u), N(x), S(rv, j + 1)],
                ) {
                    return true;
                }
                // M6: swap (u, x) and (v, y).
                if let Some(y) = y
                    && self.try_inter(
                        ru,
                        &[P(ru, i), N(v), N(y), S(ru, i + 2)],
                        rv,
                        &[P(rv, j), N(u), N(x), S(rv, j + 2)],
                    )
                {
                    return true;
                }
            }
        }
        // M8: 2-opt* — exchange the tails after u and after v.
        self.try_inter(
            ru,
            &[P(ru, i + 1), S(rv, kv)],
            rv,
            &[P(rv, kv), S(ru, i + 1)],
        )
    }

    /// Intra-route versions of the same moves plus 2-opt (reversal), priced by re-folding.
    fn try_intra(&mut self, u: u32, kv: usize) -> bool {
        let r = self.route_of[u as usize];
        let i = self.pos[u as usize];
        let route = &self.routes[r];
        let m = route.len();
        let x = (i + 1 < m).then(|| route[i + 1]);
        let v = (kv > 0).then(|| route[kv - 1]);
        let y = (kv < m).then(|| route[kv]);
        let mut candidate = std::mem::take(&mut self.scratch);
        let mut found = false;
        for kind in 0..7u8 {
            let ok = match kind {
                0 => v != Some(u) && kv != i && intra_relocate(route, &[u], v, &mut candidate),
                1 => {
                    x.is_some()
                        && v != Some(u)
                        && v != x
                        && kv != i
                        && intra_relocate(route, &[u, x.unwrap()], v, &mut candidate)
                }
                2 => {
                    x.is_some()
                        && v != Some(u)
                        && v != x
                        && intra_relocate(route, &[x.unwrap(), u], v, &mut candidate)
                }
                3 => {
                    v.is_some()
                        && v != Some(u)
                        && intra_swap(route, &[u], &[v.unwrap()], &mut candidate)
                }
                4 => {
                    x.is_some()
                        && v.is_some()
                        && v != Some(u)
                        && v != x
                        && intra_swap(route, &[u, x.unwrap()], &[v.unwrap()], &mut candidate)
                }
                5 => {
                    x.is_some()
                        && v.is_some()
                        && y.is_some()
                        && v != Some(u)
                        && v != x
                        && y != Some(u)
                        && intra_swap(
                            route,
                            &[u, x.unwrap()],
                            &[v.unwrap(), y.unwrap()],
                            &mut candidate,
                        )
                }
                _ => {
                    // 2-opt: (u, x), (v, y) -> (u, v), (x, y) by reversing x..=v.
                    let j = kv.wrapping_sub(1);
                    if v.is_some() && j > i + 1 {
                        candidate.clear();
                        candidate.extend_from_slice(route);
                        candidate[i + 1..=j].reverse();
                        true
                    } else {
                        false
                    }
                }
            };
            if ok && self.route_cost_of(&candidate) < self.cost[r] - EPS {
                found = true;
                break;
            }
        }
        if found {
            std::mem::swap(&mut self.routes[r], &mut candidate);
            self.scratch = candidate;
            self.commit(&[r]);
        } else {
            self.scratch = candidate;
        }
        found
    }
}

/// `route` with `block` (consecutive in `route`) moved to just after `anchor` (`None`: the
/// front). The block may be given reversed. Returns false if nothing would change.
fn intra_relocate(route: &[u32], block: &[u32], anchor: Option<u32>, out: &mut Vec<u32>) -> bool {
    out.clear();
    if anchor.is_none() {
        out.extend_from_slice(block);
    }
    for &c in route {
        if block.contains(&c) {
            continue;
        }
        out.push(c);
        if Some(c) == anchor {
            out.extend_from_slice(block);
        }
    }
    out.as_slice() != route
}

/// `route` with the disjoint consecutive blocks `a` and `b` exchanged.
fn intra_swap(route: &[u32], a: &[u32], b: &[u32], out: &mut Vec<u32>) -> bool {
    out.clear();
    let mut k = 0;
    while k < route.len() {
        let c = route[k];
        if c == a[0] {
            out.extend_from_slice(b);
            k += a.len();
        } else if c == b[0] {
            out.extend_from_slice(a);
            k += b.len();
        } else {
            out.push(c);
            k += 1;
        }
    }
    out.len() == route.len() && out.as_slice() != route
}
