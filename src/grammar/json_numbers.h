// Number syntax for JSON Schema: integers and decimals with exact bounds as digit patterns.
#pragma once

#include <cstdint>
#include <optional>

#include "grammar/ir.h"

namespace fc::grammar {

// A bound on a number: value and whether it is exclusive.
struct NumBound {
  double value = 0;
  bool exclusive = false;
};

// Integers in the range (no bound: unbounded; at most 19 digits), optionally followed by ".0"
// (JSON Schema counts 1.0 as an integer). Throws if the range is empty.
int32_t integer_expr(Grammar& g, std::optional<NumBound> lo, std::optional<NumBound> hi);

// Decimal numbers (fraction up to 19 digits, exponent only when unbounded). Bounds must be
// integers (a fractional bound throws "fractional bound").
int32_t number_expr(Grammar& g, std::optional<NumBound> lo, std::optional<NumBound> hi);

// Non-negative integers a..b written without leading zeros (b < 0: no upper bound).
int32_t digit_range(Grammar& g, int64_t a, int64_t b);

}  // namespace fc::grammar
