#include "grammar/json_numbers.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace fc::grammar {
namespace {

constexpr int kMaxDigits = 19;
constexpr int64_t kBig = 1000000000000000000LL;  // |bounds| beyond this count as unbounded

int32_t digits(Grammar& g, char lo, char hi) {
  return g.byte_range(static_cast<uint8_t>(lo), static_cast<uint8_t>(hi));
}

// Numbers with exactly lo.size() digits between lo and hi (same length, leading zeros allowed
// inside: these are suffixes).
int32_t same_len(Grammar& g, const std::string& lo, const std::string& hi) {
  if (lo.empty()) return g.empty();
  const size_t n = lo.size();
  if (lo[0] == hi[0])
    return g.seq({g.byte(static_cast<uint8_t>(lo[0])), same_len(g, lo.substr(1), hi.substr(1))});
  const std::string nines(n - 1, '9'), zeros(n - 1, '0');
  std::vector<int32_t> alts;
  auto rest_any = [&](char a, char b) {
    return g.seq({digits(g, a, b), g.repeat(digits(g, '0', '9'), static_cast<int32_t>(n - 1),
                                            static_cast<int32_t>(n - 1))});
  };
  if (lo.substr(1) == zeros && hi.substr(1) == nines) return rest_any(lo[0], hi[0]);
  int first = lo[0];
  if (lo.substr(1) != zeros) {
    alts.push_back(g.seq({g.byte(static_cast<uint8_t>(lo[0])), same_len(g, lo.substr(1), nines)}));
    ++first;
  }
  int last = hi[0];
  const bool hi_partial = hi.substr(1) != nines;
  if (hi_partial) --last;
  if (first <= last) alts.push_back(rest_any(static_cast<char>(first), static_cast<char>(last)));
  if (hi_partial)
    alts.push_back(g.seq({g.byte(static_cast<uint8_t>(hi[0])), same_len(g, zeros, hi.substr(1))}));
  return g.alt(alts);
}

int32_t frac_any(Grammar& g) {
  return g.seq({g.byte('.'), g.repeat(digits(g, '0', '9'), 1, kMaxDigits)});
}

// Integer bounds for "I" given real bounds: I >= ceil(lo) etc.
}  // namespace

int32_t digit_range(Grammar& g, int64_t a, int64_t b) {
  FC_CHECK(a >= 0 && (b < 0 || b >= a), "digit_range: bad range");
  const std::string as = std::to_string(a);
  std::vector<int32_t> alts;
  const size_t la = as.size();
  const size_t lb = b < 0 ? kMaxDigits : std::to_string(b).size();
  for (size_t d = la; d <= lb; ++d) {
    std::string lo = d == la ? as : "1" + std::string(d - 1, '0');
    if (d == 1 && d != la) lo = "0";
    std::string hi = (b >= 0 && d == lb) ? std::to_string(b) : std::string(d, '9');
    if (d == la && d > 1 && lo[0] == '0') lo[0] = '1';
    alts.push_back(same_len(g, lo, hi));
  }
  return g.alt(alts);
}

int32_t integer_expr(Grammar& g, std::optional<NumBound> lo, std::optional<NumBound> hi) {
  // Inclusive integer bounds, or none.
  std::optional<int64_t> L, H;
  if (lo && std::fabs(lo->value) < static_cast<double>(kBig)) {
    double v = lo->exclusive ? std::floor(lo->value) + 1 : std::ceil(lo->value);
    L = static_cast<int64_t>(v);
  } else if (lo && lo->value > 0) {
    fail("json_schema: minimum ", lo->value, " is too large");
  }
  if (hi && std::fabs(hi->value) < static_cast<double>(kBig)) {
    double v = hi->exclusive ? std::ceil(hi->value) - 1 : std::floor(hi->value);
    H = static_cast<int64_t>(v);
  } else if (hi && hi->value < 0) {
    fail("json_schema: maximum ", hi->value, " is too small");
  }
  FC_CHECK(!L || !H || *L <= *H, "json_schema: minimum/maximum leave no integer");
  std::vector<int32_t> alts;
  // x >= 0 part: [max(L,0), H]
  if (!H || *H >= 0) alts.push_back(digit_range(g, L ? std::max<int64_t>(*L, 0) : 0, H ? *H : -1));
  // x < 0 part: "-" v with v in [max(-H, 1), -L]
  if (!L || *L < 0) {
    const int64_t vlo = H ? std::max<int64_t>(-*H, 1) : 1;
    const int64_t vhi = L ? -*L : -1;
    if (vhi < 0 || vhi >= vlo) alts.push_back(g.seq({g.byte('-'), digit_range(g, vlo, vhi)}));
  }
  return g.seq({g.alt(alts), g.opt(g.literal(".0"))});
}

namespace {

// Non-negative decimals v = I.F with v in the bounds (integers; nullopt = unbounded).
int32_t nonneg_decimal(Grammar& g, int64_t lo, bool lo_ex, std::optional<int64_t> hi, bool hi_ex) {
  std::vector<int32_t> alts;
  const int32_t any_f = g.opt(frac_any(g));
  const int32_t zero_f = g.opt(g.seq({g.byte('.'), g.repeat(g.byte('0'), 1, kMaxDigits)}));
  const int32_t nonzero_f =
      g.seq({g.byte('.'), g.repeat(g.byte('0'), 0, kMaxDigits - 1), digits(g, '1', '9'),
             g.repeat(digits(g, '0', '9'), 0, kMaxDigits - 1)});  // first non-zero digit: a DFA
  // I in [lo (+1 if exclusive), hi - 1] with any fraction.
  const int64_t a = lo_ex ? lo + 1 : lo;
  if (!hi || *hi - 1 >= a) alts.push_back(g.seq({digit_range(g, a, hi ? *hi - 1 : -1), any_f}));
  // I == lo with a non-zero fraction (exclusive lower bound).
  if (lo_ex && (!hi || *hi > lo)) alts.push_back(g.seq({digit_range(g, lo, lo), nonzero_f}));
  // I == hi with a zero fraction (inclusive upper bound).
  if (hi && !hi_ex && (*hi > lo || (*hi == lo && !lo_ex)))
    alts.push_back(g.seq({digit_range(g, *hi, *hi), zero_f}));
  return g.alt(alts);
}

std::optional<int64_t> integral(const std::optional<NumBound>& b, const char* what) {
  if (!b) return std::nullopt;
  if (std::fabs(b->value) >= static_cast<double>(kBig)) return std::nullopt;
  if (b->value != std::floor(b->value))
    fail("json_schema: ", what, " ", b->value,
         " is a fractional bound on a number (only integer bounds are supported)");
  return static_cast<int64_t>(b->value);
}

}  // namespace

int32_t number_expr(Grammar& g, std::optional<NumBound> lo, std::optional<NumBound> hi) {
  const int32_t int_part =
      g.alt({g.byte('0'),
             g.seq({digits(g, '1', '9'), g.repeat(digits(g, '0', '9'), 0, kMaxDigits - 1)})});
  if (!lo && !hi) {
    const int32_t exp = g.seq({g.bytes([] {
                                 ByteSet s;
                                 s.set('e');
                                 s.set('E');
                                 return s;
                               }()),
                               g.opt(g.bytes([] {
                                 ByteSet s;
                                 s.set('+');
                                 s.set('-');
                                 return s;
                               }())),
                               g.repeat(digits(g, '0', '9'), 1, 3)});
    return g.seq({g.opt(g.byte('-')), int_part, g.opt(frac_any(g)), g.opt(exp)});
  }
  const std::optional<int64_t> L =
      integral(lo, lo && lo->exclusive ? "exclusiveMinimum" : "minimum");
  const std::optional<int64_t> H =
      integral(hi, hi && hi->exclusive ? "exclusiveMaximum" : "maximum");
  if (lo && !L && lo->value > 0) fail("json_schema: minimum is too large");
  if (hi && !H && hi->value < 0) fail("json_schema: maximum is too small");
  const bool lex = L && lo->exclusive, hex = H && hi->exclusive;
  FC_CHECK(!L || !H || *L < *H || (*L == *H && !lex && !hex),
           "json_schema: minimum/maximum leave no number");
  std::vector<int32_t> alts;
  // x >= 0: bounds max(L, 0) .. H
  if (!H || *H > 0 || (*H == 0 && !hex)) {
    if (L && *L >= 0) {
      alts.push_back(nonneg_decimal(g, *L, lex, H, hex));
    } else {
      alts.push_back(nonneg_decimal(g, 0, false, H, hex));
    }
  }
  // x < 0: "-" v, v > 0, -H <= v <= -L
  if (!L || *L < 0) {
    int64_t vlo = 0;
    bool vlo_ex = true;  // v > 0
    if (H && *H < 0) {
      vlo = -*H;
      vlo_ex = hex;
    }
    std::optional<int64_t> vhi;
    bool vhi_ex = false;
    if (L) {
      vhi = -*L;
      vhi_ex = lex;
    }
    alts.push_back(g.seq({g.byte('-'), nonneg_decimal(g, vlo, vlo_ex, vhi, vhi_ex)}));
  }
  return g.alt(alts);
}

}  // namespace fc::grammar
