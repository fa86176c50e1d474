# Independent R reference values for dlrn's descriptor encoding, logistic fits, Firth
# regression and the rms nomogram.  Run from tests/data/descriptors:
#
#     cd tests/data/descriptors && Rscript r/make_refs.R
#
# Reads descriptors.csv (and ../firth/ for the Firth hand-checks); writes design.csv and
# expected.json.  Deterministic (no random numbers, no time stamps).  Every hand-check
# prints "[OK] ..." or stops the script.

suppressPackageStartupMessages({
  library(jsonlite)
  library(rms)
  library(brglm2)
})
invisible(Sys.setlocale("LC_COLLATE", "C"))
options(warn = 1)

ok <- function(cond, msg) {
  if (!isTRUE(cond)) stop("HAND-CHECK FAILED: ", msg, call. = FALSE)
  cat("[OK]", msg, "\n")
}
csort <- function(x) sort(unique(x), method = "radix")   # C-locale order (Python sorted)

# ----------------------------------------------------------------------------------------
# Design matrix
# ----------------------------------------------------------------------------------------
raw <- read.csv("descriptors.csv", stringsAsFactors = FALSE, check.names = FALSE)
stopifnot(nrow(raw) == 180, !anyNA(raw$y), !anyNA(raw$score), !anyNA(raw$Age))
y <- raw$y
n <- nrow(raw)

categorical <- function(var) {
  x <- raw[[var]]
  lev <- csort(x)
  counts <- vapply(lev, function(l) sum(x == l), numeric(1))
  ref <- lev[which.max(counts)]                     # most frequent; ties -> first sorted
  others <- lev[lev != ref]
  m <- vapply(others, function(l) as.numeric(x == l), numeric(n))
  m <- matrix(m, nrow = n, dimnames = list(NULL, paste0(var, "[", others, "]")))
  list(matrix = m, reference = ref, levels = lev, counts = setNames(as.list(counts), lev))
}
multilabel <- function(var, sep = "&") {
  tok <- lapply(strsplit(raw[[var]], sep, fixed = TRUE), trimws, which = "both")
  tokens <- csort(unlist(tok))
  m <- vapply(tokens, function(t) vapply(tok, function(r) as.numeric(t %in% r), 0), numeric(n))
  m <- matrix(m, nrow = n, dimnames = list(NULL, paste0(var, "[", tokens, "]")))
  list(matrix = m, tokens = tokens)
}

shape <- categorical("Shape")
margin <- multilabel("Margin")
echo <- categorical("Echogenicity")
halo <- categorical("Halo")

X <- cbind("(Intercept)" = 1, score = raw$score, Age = raw$Age,
           shape$matrix, margin$matrix, echo$matrix, halo$matrix)
variables <- list(score = "score", Age = "Age",
                  Shape = colnames(shape$matrix), Margin = colnames(margin$matrix),
                  Echogenicity = colnames(echo$matrix), Halo = colnames(halo$matrix))

# hand-check of the Margin encoding: 'circumscribed' + the 'not circumscribed - ...'
# tokens (the first token of every value) sum to 1 in every row -> aliased with intercept
first_tok <- grep("^Margin\\[(circumscribed|not circumscribed - .*)\\]$", colnames(X), value = TRUE)
ok(all(rowSums(X[, first_tok]) == 1),
   sprintf("Margin: %s sum to 1 in all %d rows (aliased with the intercept)",
           paste(first_tok, collapse = " + "), n))
ok(all(rowSums(margin$matrix) == lengths(strsplit(raw$Margin, "&", fixed = TRUE))),
   "Margin: each row holds as many token columns as '&'-separated tokens")
ok(identical(shape$reference, "oval") && identical(echo$reference, "hypoechoic") &&
     identical(halo$reference, "no"),
   "reference levels are the most frequent: Shape=oval, Echogenicity=hypoechoic, Halo=no")
ok(all(y[X[, "Echogenicity[anechoic]"] == 1] == 0) && all(y[X[, "Echogenicity[hyperechoic]"] == 1] == 0),
   "Echogenicity[anechoic] (15) and [hyperechoic] (6) are all y=0 (quasi-complete separation)")

design <- data.frame(case_id = raw$case_id, X, check.names = FALSE, stringsAsFactors = FALSE)
write.csv(design, "design.csv", row.names = FALSE, eol = "\n")
chk <- read.csv("design.csv", check.names = FALSE, stringsAsFactors = FALSE)
ok(identical(colnames(chk), colnames(design)) && max(abs(as.matrix(chk[, -1]) - X)) == 0,
   "design.csv round-trips exactly")

# ----------------------------------------------------------------------------------------
# glm helpers.  glm(y ~ Z) with Z the non-intercept columns: the model matrix is exactly
# [1, Z] in design order, so glm.fit's pivoted QR (LINPACK dqrdc2, tol = min(1e-7,
# epsilon/1000) = 1e-11) decides the aliasing, and the null deviance is the intercept-only
# one (df 179).
# ----------------------------------------------------------------------------------------
fit_glm <- function(cols) {
  Z <- X[, cols, drop = FALSE]
  if (length(cols)) glm(y ~ Z, family = binomial) else glm(y ~ 1, family = binomial)
}
glm_summary <- function(fit, cols) {
  allc <- c("(Intercept)", cols)
  b <- coef(fit)
  stopifnot(length(b) == length(allc))
  tab <- summary(fit)$coefficients
  rownames(tab) <- allc[match(rownames(tab), names(b))]   # glm names them "Z<col>" (or "Z")
  names(b) <- allc
  coefs <- lapply(allc, function(cn) {
    if (is.na(b[[cn]])) return(list(estimate = NA_real_, se = NA_real_, z = NA_real_, p = NA_real_))
    list(estimate = unname(tab[cn, 1]), se = unname(tab[cn, 2]),
         z = unname(tab[cn, 3]), p = unname(tab[cn, 4]))
  })
  names(coefs) <- allc
  list(columns = I(allc), coefficients = coefs,
       aliased = I(allc[is.na(b)]),
       deviance = fit$deviance, null_deviance = fit$null.deviance,
       df_residual = fit$df.residual, df_null = fit$df.null, rank = fit$rank,
       iter = fit$iter, converged = fit$converged,
       loglik = as.numeric(logLik(fit)))
}
lrt <- function(small, big) {
  a <- anova(small, big, test = "Chisq")
  list(statistic = a$Deviance[2], df = a$Df[2], p = a[["Pr(>Chi)"]][2])
}

# ----------------------------------------------------------------------------------------
# A. univariate glm fits
# ----------------------------------------------------------------------------------------
null_fit <- fit_glm(character(0))
A <- list()
for (v in names(variables)) {
  f <- fit_glm(variables[[v]])
  A[[v]] <- c(glm_summary(f, variables[[v]]), list(lrt_vs_null = lrt(null_fit, f)))
}
expected_alias <- tail(grep("^Margin\\[not circumscribed - ", colnames(X), value = TRUE), 1)
ok(identical(as.character(A$Margin$aliased), expected_alias),
   sprintf("univariate Margin: glm aliases %s", expected_alias))
ok(all(vapply(A[names(A) != "Margin"], function(a) length(a$aliased) == 0, TRUE)),
   "univariate fits of the other variables alias nothing")

# ----------------------------------------------------------------------------------------
# B. multivariate glm fit and drop-one LRTs
# ----------------------------------------------------------------------------------------
all_cols <- unlist(variables, use.names = FALSE)
full <- fit_glm(all_cols)
B <- glm_summary(full, all_cols)
ok(identical(as.character(B$aliased), expected_alias),
   sprintf("multivariate: glm aliases %s", expected_alias))
B$drop_one <- list()
for (v in names(variables)) {
  B$drop_one[[v]] <- c(list(columns = I(variables[[v]])),
                       lrt(fit_glm(setdiff(all_cols, variables[[v]])), full))
}
B$note <- paste("Echogenicity[anechoic] and [hyperechoic] are quasi-completely separated:",
                "their ML estimates diverge; glm stops when |dev - dev_old|/(|dev| + 0.1) < 1e-8",
                "and reports converged = TRUE with large, iteration-dependent coefficients")

# ----------------------------------------------------------------------------------------
# C. Firth's penalised logistic regression, re-implementing logistf's algorithm
#    (logistf::logistf.fit, Heinze & Schemper 2002), since logistf is not installed.
# ----------------------------------------------------------------------------------------
# Penalised log-likelihood l*(b) = l(b) + 0.5 log det(X'WX), always on the FULL design X.
firth_lstar <- function(Xd, yy, beta) {
  eta <- drop(Xd %*% beta)
  ll <- sum(yy * plogis(eta, log.p = TRUE) + (1 - yy) * plogis(eta, lower.tail = FALSE, log.p = TRUE))
  w <- plogis(eta) * plogis(eta, lower.tail = FALSE)
  info <- crossprod(Xd * sqrt(w))
  list(lstar = ll + 0.5 * as.numeric(determinant(info, logarithm = TRUE)$modulus), loglik = ll)
}
# Newton-Raphson on the modified score U*(b) = X'(y - pi + h (0.5 - pi)), h = diag of the
# hat matrix W^1/2 X (X'WX)^-1 X' W^1/2 of the FULL design.  Coefficients in `fixed` are
# held at `value` (logistf's col.fit): only the free ones move, with the step
# (X'WX)[free, free]^-1 U*[free]; the penalty (h, det) still uses all columns, so the
# fixed point maximises the full-design l* over the free coefficients.  Step capped at 5
# (largest absolute component, logistf's maxstep), halved while l* decreases (logistf's
# step-halving, up to 50 times), convergence when max|step| < 1e-10 and max|U*[free]| < 1e-10.
# Exact Hessian of l*: d U*_k / d b_l, with Q = X (X'WX)^-1 X', h_i = w_i Q_ii,
# v = dw/deta = w (1 - 2 pi), dh_i/db_l = v_i x_il Q_ii - w_i sum_m Q_im^2 v_m x_ml.
firth_hessian <- function(Xd, p, w, covs, h) {
  Q <- Xd %*% covs %*% t(Xd)
  v <- w * (1 - 2 * p)
  D <- (v * diag(Q)) * Xd - w * ((Q * Q) %*% (v * Xd))
  H <- -crossprod(Xd, (w + h * w) * Xd) + crossprod(Xd, (0.5 - p) * D)
  (H + t(H)) / 2
}
firth_fit <- function(Xd, yy, fixed = integer(0), value = numeric(0), start = NULL,
                      maxit = 200, tol = 1e-10, maxstep = 5, maxhs = 50, newton_after = 25) {
  k <- ncol(Xd)
  beta <- if (is.null(start)) rep(0, k) else start
  beta[fixed] <- value
  free <- setdiff(seq_len(k), fixed)
  cur <- firth_lstar(Xd, yy, beta)
  converged <- FALSE
  iter <- 0
  repeat {
    eta <- drop(Xd %*% beta)
    p <- plogis(eta)
    w <- p * plogis(eta, lower.tail = FALSE)
    info <- crossprod(Xd * sqrt(w))
    covs <- solve(info)
    h <- rowSums((Xd %*% covs) * Xd) * w
    U <- drop(crossprod(Xd, yy - p + h * (0.5 - p)))
    delta <- numeric(k)
    if (length(free)) {
      delta[free] <- solve(info[free, free, drop = FALSE], U[free])
      if (iter >= newton_after) {
        # logistf's step ((X'WX)^-1 U*) converges only linearly, and very slowly for some
        # restricted (profile) fits along flat directions of l*; after `newton_after`
        # steps use the exact Hessian of l* instead (same fixed point U*[free] = 0).
        Hs <- firth_hessian(Xd, p, w, covs, h)[free, free, drop = FALSE]
        ch <- tryCatch(chol(-Hs), error = function(e) NULL)
        if (!is.null(ch)) delta[free] <- backsolve(ch, forwardsolve(t(ch), U[free]))
      }
    }
    mx <- max(abs(delta)) / maxstep
    if (mx > 1) delta <- delta / mx
    if (max(abs(delta)) < tol && max(abs(U[free])) < tol) { converged <- TRUE; break }
    if (iter >= maxit) break
    iter <- iter + 1
    new <- beta + delta
    nl <- firth_lstar(Xd, yy, new)
    hs <- 0
    # halve while l* decreases by more than rounding error (near the optimum the l* gain
    # of a step, ~U*'step ~ 1e-16, is below double precision and must not block the step)
    while (nl$lstar < cur$lstar - 1e-12 * (1 + abs(cur$lstar)) && hs < maxhs) {
      delta <- delta / 2; new <- beta + delta; nl <- firth_lstar(Xd, yy, new); hs <- hs + 1
    }
    beta <- new; cur <- nl
  }
  names(beta) <- colnames(Xd)
  list(beta = beta, lstar = cur$lstar, loglik = cur$loglik, iter = iter,
       converged = converged, covs = covs, max_score = max(abs(U[free])))
}
# profile penalised-likelihood 95% CI of coefficient j: the two roots of
# 2 (l*(b_hat) - max_{b_-j} l*(b | b_j)) = qchisq(0.95, 1)
firth_profile_ci <- function(Xd, yy, fit, j, level = 0.95) {
  q <- qchisq(level, 1)
  f <- function(b) {
    r <- firth_fit(Xd, yy, fixed = j, value = b, start = replace(fit$beta, j, b))
    if (!r$converged) stop("profile fit did not converge")
    2 * (fit$lstar - r$lstar) - q
  }
  bhat <- fit$beta[[j]]
  step <- max(sqrt(fit$covs[j, j]), 0.1)
  side <- function(dir) {
    inner <- bhat; outer <- bhat + dir * step; fo <- f(outer)
    while (fo < 0) { inner <- outer; outer <- bhat + 2 * (outer - bhat); fo <- f(outer) }
    uniroot(f, sort(c(inner, outer)), f.lower = if (dir < 0) fo else f(inner),
            f.upper = if (dir < 0) f(inner) else fo, tol = 1e-12, maxiter = 1000)$root
  }
  c(side(-1), side(+1))
}
# penalised likelihood-ratio test of columns `js` fixed at 0 (others refitted, full penalty)
firth_plr <- function(Xd, yy, fit, js) {
  r <- firth_fit(Xd, yy, fixed = js, value = rep(0, length(js)), start = replace(fit$beta, js, 0))
  if (!r$converged) stop("restricted fit did not converge")
  st <- 2 * (fit$lstar - r$lstar)
  list(statistic = st, df = length(js), p = pchisq(st, length(js), lower.tail = FALSE))
}
firth_report <- function(Xd, yy, vars = list()) {
  fit <- firth_fit(Xd, yy)
  if (!fit$converged) stop("Firth fit did not converge")
  se <- sqrt(diag(fit$covs))
  coefs <- lapply(seq_len(ncol(Xd)), function(j) {
    ci <- firth_profile_ci(Xd, yy, fit, j)
    t <- firth_plr(Xd, yy, fit, j)
    list(estimate = fit$beta[[j]], se = se[[j]], ci_lower = ci[1], ci_upper = ci[2],
         plr_statistic = t$statistic, p = t$p)
  })
  names(coefs) <- colnames(Xd)
  vt <- lapply(vars, function(cols) {
    c(list(columns = I(cols)), firth_plr(Xd, yy, fit, match(cols, colnames(Xd))))
  })
  list(columns = I(colnames(Xd)), coefficients = coefs, variables = vt,
       penalized_loglik = fit$lstar, loglik = fit$loglik, iter = fit$iter,
       converged = fit$converged, max_abs_modified_score = fit$max_score)
}
brglm_check <- function(Xd, yy, beta, label) {
  bf <- suppressWarnings(glm(yy ~ 0 + Xd, family = binomial, method = brglm2::brglmFit,
                             type = "AS_mean", epsilon = 1e-12, maxit = 1000))
  d <- max(abs(coef(bf) - beta) / pmax(1, abs(beta)))
  ok(bf$converged && d < 1e-6,
     sprintf("Firth == brglm2::brglmFit(AS_mean) on %s (max rel diff %.1e)", label, d))
}

# hand-check (2): logistf's published values (endometrial and sex2)
pub <- fromJSON("../firth/expected.json")
for (ds in c("endometrial", "sex2")) {
  dd <- read.csv(file.path("../firth", paste0(ds, ".csv")))
  e <- pub[[ds]]
  Xd <- cbind("(Intercept)" = 1, as.matrix(dd[, e$terms[-1]]))
  rep_ <- firth_report(Xd, dd[[e$outcome]])
  est <- vapply(rep_$coefficients, `[[`, 0, "estimate")
  lo <- vapply(rep_$coefficients, `[[`, 0, "ci_lower")
  hi <- vapply(rep_$coefficients, `[[`, 0, "ci_upper")
  rel <- function(a, b) max(abs(a - b) / abs(b))
  ok(rel(est, e$coef) < 1e-5 && rel(lo, e$ci_lower) < 1e-5 && rel(hi, e$ci_upper) < 1e-5,
     sprintf("Firth on logistf's %s example matches published coef/CI (max rel diff %.1e / %.1e / %.1e)",
             ds, rel(est, e$coef), rel(lo, e$ci_lower), rel(hi, e$ci_upper)))
  brglm_check(Xd, dd[[e$outcome]], est, paste(ds, "example"))
}

aliased <- as.character(B$aliased)
drop_alias <- function(cols) setdiff(cols, aliased)
vars_c <- lapply(variables, drop_alias)
Xc <- X[, c("(Intercept)", unlist(vars_c, use.names = FALSE))]
C <- list(
  method = paste("R re-implementation of logistf's algorithm (logistf not installable);",
                 "estimates checked against brglm2::brglmFit(type = 'AS_mean'), coefficients and",
                 "profile CIs checked against logistf's published endometrial and sex2 values"),
  removed_aliased_columns = I(aliased),
  multivariate = firth_report(Xc, y, vars_c))
brglm_check(Xc, y, vapply(C$multivariate$coefficients, `[[`, 0, "estimate"), "the multivariate design")
C$univariate <- list()
for (v in c("Margin", "Echogenicity")) {
  Xu <- X[, c("(Intercept)", vars_c[[v]])]
  C$univariate[[v]] <- firth_report(Xu, y, vars_c[v])
  brglm_check(Xu, y, vapply(C$univariate[[v]]$coefficients, `[[`, 0, "estimate"),
              paste("the univariate", v, "design"))
}

# ----------------------------------------------------------------------------------------
# E. ML glm of the nomogram model: score + Margin tokens + Echogenicity
# ----------------------------------------------------------------------------------------
nomo_cols <- c("score", variables$Margin, variables$Echogenicity)
efit <- fit_glm(nomo_cols)
E <- glm_summary(efit, nomo_cols)
E$note <- "maximum likelihood under quasi-complete separation: separated coefficients diverge"
ok(identical(as.character(E$aliased), expected_alias), sprintf("nomogram-model glm aliases %s", expected_alias))

# ----------------------------------------------------------------------------------------
# D. rms nomogram with the Firth coefficients of the nomogram model
# ----------------------------------------------------------------------------------------
nd_cols <- setdiff(nomo_cols, as.character(E$aliased))
Xn <- X[, c("(Intercept)", nd_cols)]
firth_n <- firth_fit(Xn, y)
ok(firth_n$converged, "Firth fit of the nomogram model converged")
brglm_check(Xn, y, firth_n$beta, "the nomogram design")
safe <- setNames(c("score", sprintf("M%d", seq_along(grep("^Margin", nd_cols))),
                   sprintf("E%d", seq_along(grep("^Echogenicity", nd_cols)))), nd_cols)
ndat <- data.frame(y = y, Xn[, nd_cols], check.names = FALSE)
names(ndat) <- c("y", safe)
dd <- datadist(ndat[, safe])
options(datadist = "dd")
form <- as.formula(paste("y ~", paste(safe, collapse = " + ")))
lrm_warnings <- character(0)
lfit <- withCallingHandlers(lrm(form, data = ndat, x = TRUE, y = TRUE), warning = function(w) {
  lrm_warnings <<- c(lrm_warnings, conditionMessage(w)); invokeRestart("muffleWarning")
})
lrm_note <- if (isTRUE(lfit$fail)) "lrm failed" else "plain lrm fit (its ML coefficients then replaced)"
if (isTRUE(lfit$fail)) {
  lfit <- suppressWarnings(lrm(form, data = ndat, x = TRUE, y = TRUE, penalty = 1e-6))
  lrm_note <- "lrm with penalty = 1e-6 (plain lrm failed); coefficients then replaced"
}
stopifnot(identical(names(coef(lfit)), c("Intercept", unname(safe))))
lfit_ml <- lfit
lfit$coefficients[] <- unname(firth_n$beta)
nom <- nomogram(lfit, fun = plogis, maxscale = 100, nint = 10,
                fun.at = c(.05, .1, .25, .5, .75, .9, .95))
info <- attr(nom, "info")
sc <- info$sc
lp0 <- unname(info$Intercept)
ticks <- lapply(setNames(safe, nd_cols), function(s) list(values = I(nom[[s]][[s]]), points = I(nom[[s]]$points)))
for (cn in nd_cols[-1]) ok(identical(as.numeric(ticks[[cn]]$values), c(0, 1)),
                            sprintf("nomogram: %s is discrete with ticks 0, 1", cn))
ok(isTRUE(all.equal(as.numeric(ticks$score$values), pretty(range(raw$score), 10), tolerance = 0)),
   "nomogram: score axis = pretty(range(score), 10)")
b <- firth_n$beta
minc <- vapply(nd_cols, function(cn) min(b[[cn]] * as.numeric(ticks[[cn]]$values)), 0)
maxc <- vapply(nd_cols, function(cn) max(b[[cn]] * as.numeric(ticks[[cn]]$values)), 0)
ok(abs(sc - 100 / max(maxc - minc)) < 1e-12 * sc && abs(lp0 - (b[[1]] + sum(minc))) < 1e-12,
   sprintf("nomogram: sc = 100 / max range = %.6f, lp at 0 points = %.6f", sc, lp0))
pts <- sweep(sweep(Xn[, nd_cols], 2, b[nd_cols], `*`), 2, minc, `-`) * sc
# hand-check of row 1: points_j = (b_j x_j - min_axis(b_j x)) * sc, read off the nomogram
row1 <- vapply(nd_cols, function(cn) {
  v <- as.numeric(ticks[[cn]]$values); p <- as.numeric(ticks[[cn]]$points)
  approx(v, p, xout = Xn[1, cn])$y           # exact for ticks; linear for score
}, 0)
ok(max(abs(row1 - pts[1, ])) < 1e-9,
   sprintf("nomogram row 1 points by formula equal the nomogram's axes (total %.6f)", sum(pts[1, ])))
total <- rowSums(pts)
prob <- plogis(lp0 + total / sc)
ok(max(abs(prob - plogis(drop(Xn %*% b)))) < 1e-12 &&
     max(abs(prob - predict(lfit, newdata = ndat, type = "fitted"))) < 1e-12,
   "nomogram: plogis(lp0 + total/sc) equals the Firth probabilities and predict(lrm fit)")
rng <- (maxc - minc) * sc
fun_axis <- nom[[length(nom)]]
D <- list(
  model = "y ~ score + Margin tokens (aliased removed) + Echogenicity; Firth coefficients",
  rms_fit = lrm_note,
  rms_fit_warnings = I(lrm_warnings),
  rms_fit_ml_coefficients = as.list(setNames(unname(coef(lfit_ml)), c("(Intercept)", nd_cols))),
  columns = I(c("(Intercept)", nd_cols)),
  coefficients = as.list(firth_n$beta),
  nomogram_call = "nomogram(fit, fun = plogis, maxscale = 100, nint = 10, fun.at = c(.05,.1,.25,.5,.75,.9,.95))",
  points_per_lp_unit = sc,
  lp_at_zero_points = lp0,
  axes = ticks,
  points_range = as.list(rng),
  points_share = as.list(rng / sum(rng)),
  probability_axis = list(fun_at = I(as.numeric(fun_axis$x.real)), total_points = I(as.numeric(fun_axis$x))),
  first_rows = list(case_id = I(raw$case_id[1:10]),
                    points = lapply(as.data.frame(pts[1:10, ], check.names = FALSE), I),
                    total_points = I(unname(total[1:10])),
                    probability = I(unname(prob[1:10]))))

# ----------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------
out <- list(
  meta = list(
    generated_by = "tests/data/descriptors/r/make_refs.R",
    R = R.version$version.string,
    rms = as.character(packageVersion("rms")),
    brglm2 = as.character(packageVersion("brglm2")),
    jsonlite = as.character(packageVersion("jsonlite")),
    n = n, events = sum(y),
    design_columns = I(colnames(X)),
    variables = lapply(variables, I),
    reference_levels = list(Shape = shape$reference, Echogenicity = echo$reference, Halo = halo$reference),
    margin_tokens = I(margin$tokens),
    aliased_column = I(aliased)),
  A = A, B = B, C = C, D = D, E = E)
json <- toJSON(out, digits = NA, auto_unbox = TRUE, na = "string", pretty = TRUE)
writeLines(json, "expected.json", useBytes = TRUE)
cat("wrote design.csv and expected.json\n")
