# R reference values for dlrn's nomogram validation (rms validate / calibrate, method "boot").
# Run from tests/data/nomogram_validation:
#
#     cd tests/data/nomogram_validation && Rscript r/make_refs.R
#
# Reads ../descriptors/descriptors.csv (180 cases, 64 events); writes expected.json.
# Deterministic (seeded Mersenne-Twister); every hand-check prints "[OK] ..." or stops.
#
# Model: lrm(y ~ score + Age + Shape + Halo, x = TRUE, y = TRUE), a pre-specified model
# (bw = FALSE: rms repeats the fit, not a selection, in each sample).
#  - apparent: validate's index.orig and calibrate's predy / calibrated.orig (no resampling):
#    exact;
#  - one_sample: set.seed(11); validate(f, B = 1) and, with the same seed, calibrate(f, B = 1),
#    with the rows that resample drew (set.seed(11); sample(n, replace = TRUE)): every column
#    of one resample, exact;
#  - large_B: validate(f, B = 20000) and calibrate(f, B = 20000) (seed 2024): Monte Carlo
#    error about 1/sqrt(20000) of the per-resample SD; Python compares within its own and
#    this Monte Carlo error.

suppressPackageStartupMessages({
  library(jsonlite)
  library(rms)
})
options(warn = 1)
ok <- function(cond, msg) {
  if (!isTRUE(cond)) stop("HAND-CHECK FAILED: ", msg, call. = FALSE)
  cat("[OK]", msg, "\n")
}

raw <- read.csv("../descriptors/descriptors.csv", stringsAsFactors = FALSE)
stopifnot(nrow(raw) == 180, !anyNA(raw[c("y", "score", "Age", "Shape", "Halo")]))
raw$Shape <- factor(raw$Shape)
raw$Halo <- factor(raw$Halo)
n <- nrow(raw)
f <- lrm(y ~ score + Age + Shape + Halo, data = raw, x = TRUE, y = TRUE)

as_list <- function(v) {
  m <- unclass(v)
  out <- lapply(rownames(m), function(r) as.list(m[r, ]))
  names(out) <- rownames(m)
  out
}
cal_list <- function(cal) {
  m <- unclass(cal)
  list(predy = unname(m[, "predy"]), calibrated_orig = unname(m[, "calibrated.orig"]),
       calibrated_corrected = unname(m[, "calibrated.corrected"]),
       optimism = unname(m[, "optimism"]), n = unname(m[, "n"]))
}
cal_errors <- function(cal) {
  p <- attr(cal, "predicted")
  s <- !is.na(cal[, "predy"] + cal[, "calibrated.corrected"])
  err <- p - approx(cal[s, "predy"], cal[s, "calibrated.corrected"], xout = p, ties = mean)$y
  list(mean_absolute_error = mean(abs(err), na.rm = TRUE),
       mean_squared_error = mean(err^2, na.rm = TRUE),
       quantile_90 = unname(quantile(abs(err), 0.9, na.rm = TRUE)))
}

# Hand checks of the apparent indexes against textbook formulas.
lp <- f$linear.predictors
v0 <- validate(f, B = 1)
ok(abs(v0["Dxy", "index.orig"] - 2 * (somers2(plogis(lp), raw$y)["C"] - 0.5)) < 1e-12,
   "apparent Dxy = 2 (AUC - 0.5)")
lr <- f$deviance[1] - f$deviance[2]
ok(abs(v0["R2", "index.orig"] - (1 - exp(-lr / n)) / (1 - exp(-f$deviance[1] / n))) < 1e-12,
   "apparent R2 = Nagelkerke")
ok(abs(v0["B", "index.orig"] - mean((raw$y - plogis(lp))^2)) < 1e-12, "apparent Brier")
ok(abs(v0["g", "index.orig"] - GiniMd(lp)) < 1e-12, "apparent g = GiniMd(lp)")
ok(abs(v0["gp", "index.orig"] - GiniMd(plogis(lp))) < 1e-12, "apparent gp = GiniMd(p)")
ok(abs(v0["D", "index.orig"] - (lr - 1) / n) < 1e-12, "apparent D = (LR - 1) / n")

set.seed(11)
rows <- sample(n, replace = TRUE)
set.seed(11)
v1 <- validate(f, B = 1)
set.seed(11)
c1 <- calibrate(f, B = 1)
# Hand check: the one resample's test Dxy is that of its model on the original cases.
g1 <- lrm.fit(f$x[rows, ], raw$y[rows])
lp1 <- drop(cbind(1, f$x) %*% coef(g1))
ok(abs(v1["Dxy", "test"] - 2 * (somers2(lp1, raw$y)["C"] - 0.5)) < 1e-10,
   "one resample: test Dxy is the resample model's Dxy on the original cases")
refit <- glm(raw$y ~ lp1, family = binomial)
ok(abs(v1["Slope", "test"] - coef(refit)[2]) < 1e-6, "one resample: test slope = glm(y ~ lp)")

set.seed(2024)
vB <- validate(f, B = 20000)
set.seed(2024)
cB <- calibrate(f, B = 20000)

out <- list(
  meta = list(R = R.version.string, rms = as.character(packageVersion("rms")),
              Hmisc = as.character(packageVersion("Hmisc")),
              model = "lrm(y ~ score + Age + Shape + Halo, x = TRUE, y = TRUE)",
              coefficients = as.list(coef(f))),
  apparent = list(validate = lapply(as_list(v0), function(r) r[["index.orig"]]),
                  predicted = unname(plogis(lp)), calibrate = cal_list(c1)[c("predy", "calibrated_orig")]),
  one_sample = list(rows = rows, validate = as_list(v1), calibrate = cal_list(c1),
                    calibrate_errors = cal_errors(c1)),
  large_B = list(B = 20000, seed = 2024, validate = as_list(vB), calibrate = cal_list(cB),
                 calibrate_errors = cal_errors(cB))
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, na = "string", pretty = TRUE),
           "expected.json")
print(vB)
print(cB)
cat("written expected.json\n")
