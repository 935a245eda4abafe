//! Checks the fuzz targets (`crate::fuzz`) share, here at the bottom layer so that
//! a parser's own `fuzz` function, in whatever layer it lives, can use them.

/// Checks that a parser fed growing prefixes of `data` (as a listener filter
/// peeking at a socket is) never changes its mind: an answer given on a prefix
/// is the answer on the whole input, and "need `n` bytes" asks for more than it
/// has. `need_more` says whether a result is such a request, and for how many.
pub(crate) fn prefix_stable<T, P, N>(data: &[u8], parse: P, need_more: N)
where
    T: PartialEq + std::fmt::Debug,
    P: Fn(&[u8]) -> T,
    N: Fn(&T) -> Option<usize>,
{
    let whole = parse(data);
    for cut in cut_points(data.len()) {
        let part = parse(&data[..cut]);
        match need_more(&part) {
            Some(n) => assert!(n > cut, "asked for {n} bytes with {cut} in hand"),
            None => assert_eq!(part, whole, "the first {cut} bytes gave another answer than all {}", data.len()),
        }
    }
}

/// Where to cut an input of `len` bytes: every place in the first 64 bytes,
/// then 32 places spread over the rest (parsing each prefix costs its length).
pub(crate) fn cut_points(len: usize) -> impl Iterator<Item = usize> {
    let dense = 0..len.min(64);
    let step = (len / 32).max(1);
    let sparse = (64..len).step_by(step);
    dense.chain(sparse)
}
