# Reference values for dlrn's clinical variable selection (dlrn.clinical.selection):
# the univariate screen, then backward elimination by R's drop1(fit, test = "LRT") in a
# loop, the "enter" rule, and the pre-specified model's drop1 table, on two designs:
#   descriptors: ../descriptors/design.csv (built in R; aliased Margin token, separated
#                Echogenicity levels), clinical variables Age, Shape, Margin, Echogenicity,
#                Halo (and, second set, with the image score)
#   shared:      shared_design.csv (dlrn's encoder, see make_inputs.py): 8 descriptors,
#                Margin, Shape and Echogenicity correlated through one latent severity
# Run: cd tests/data/selection && Rscript r/make_refs.R   (writes expected.json)
suppressPackageStartupMessages(library(jsonlite))
threshold <- 0.05

read_design <- function(path) {
  design <- read.csv(path, check.names = FALSE, stringsAsFactors = FALSE)
  rownames(design) <- design$case_id
  design
}

# one matrix per variable, so that drop1 drops all of a variable's terms together
model_data <- function(design, y, terms, variables) {
  data <- list(y = y)
  for (v in variables) data[[make.names(v)]] <- as.matrix(design[, terms[[v]], drop = FALSE])
  data
}

fit_of <- function(design, y, terms, variables) {
  data <- model_data(design, y, terms, variables)
  formula <- as.formula(paste("y ~", paste(make.names(variables), collapse = " + ")))
  suppressWarnings(glm(formula, family = binomial, data = data))
}

# the analysis' univariate p: Wald for a one-term variable, LRT against the constant
# for a several-term one (no one-term variable separates in these designs)
univariate_p <- function(design, y, terms, v) {
  fit <- fit_of(design, y, terms, v)
  if (length(terms[[v]]) == 1) {
    return(summary(fit)$coefficients[2, "Pr(>|z|)"])
  }
  null <- suppressWarnings(glm(y ~ 1, family = binomial))
  anova(null, fit, test = "Chisq")[2, "Pr(>Chi)"]
}

drop_table <- function(fit, variables) {
  d <- suppressWarnings(drop1(fit, test = "LRT"))
  stopifnot(identical(rownames(d)[-1], make.names(variables)))
  list(p = setNames(d[-1, "Pr(>Chi)"], variables), df = setNames(d[-1, "Df"], variables),
       aic = d["<none>", "AIC"])
}

backward <- function(design, y, terms, variables) {
  steps <- list()
  current <- variables
  repeat {
    fit <- fit_of(design, y, terms, current)
    d <- drop_table(fit, current)
    p <- d$p
    p[is.na(p)] <- Inf
    weakest <- which.max(p)
    leaves <- !(p[weakest] < threshold)
    stopifnot(abs(d$aic - AIC(fit)) < 1e-9)
    steps[[length(steps) + 1]] <- list(
      model = current, terms = fit$rank - 1, variable = current[weakest],
      p_value = unname(d$p[weakest]), df = unname(d$df[weakest]), removed = leaves,
      aic = AIC(fit), deviance = deviance(fit), drop1_p = as.list(d$p))
    if (!leaves) break
    current <- current[-weakest]
    if (length(current) == 0) break
  }
  list(selected = if (length(steps) && !steps[[length(steps)]]$removed) current else list(),
       path = steps)
}

enter <- function(design, y, terms, variables) {
  fit <- fit_of(design, y, terms, variables)
  d <- drop_table(fit, variables)
  coefficients <- summary(fit)$coefficients
  p <- sapply(variables, function(v) {
    # a one-column matrix term's coefficient is named after the variable alone
    if (length(terms[[v]]) == 1) coefficients[make.names(v), "Pr(>|z|)"]
    else d$p[[v]]
  })
  list(p = as.list(p), selected = variables[p < threshold], aic = AIC(fit),
       deviance = deviance(fit), terms = fit$rank - 1)
}

reference <- function(design, y, terms, variables) {
  univariate <- sapply(variables, function(v) univariate_p(design, y, terms, v))
  kept <- variables[univariate < threshold]
  full <- fit_of(design, y, terms, variables)
  none <- drop_table(full, variables)
  list(variables = variables, univariate_p = as.list(univariate), univariate_kept = kept,
       backward = backward(design, y, terms, kept), enter = enter(design, y, terms, kept),
       none = list(p = as.list(none$p), df = as.list(none$df), aic = AIC(full),
                   deviance = deviance(full), terms = full$rank - 1))
}

descriptors <- read_design("../descriptors/design.csv")
raw <- read.csv("../descriptors/descriptors.csv", stringsAsFactors = FALSE)
stopifnot(identical(raw$case_id, descriptors$case_id))
columns <- names(descriptors)
d_terms <- list(score = "score", Age = "Age",
                Shape = grep("^Shape\\[", columns, value = TRUE),
                Margin = grep("^Margin\\[", columns, value = TRUE),
                Echogenicity = grep("^Echogenicity\\[", columns, value = TRUE),
                Halo = "Halo[yes]")

shared <- read_design("shared_design.csv")
shared_y <- read.csv("shared.csv", stringsAsFactors = FALSE)
stopifnot(identical(shared_y$case_id, shared$case_id))
s_terms <- fromJSON("shared_terms.json")

expected <- list(
  meta = list(generated_by = "tests/data/selection/r/make_refs.R", R = R.version.string,
              jsonlite = as.character(packageVersion("jsonlite")), threshold = threshold),
  descriptors = reference(descriptors, raw$y, d_terms,
                          c("Age", "Shape", "Margin", "Echogenicity", "Halo")),
  descriptors_score = reference(descriptors, raw$y, d_terms, names(d_terms)),
  shared = reference(shared, shared_y$y, s_terms, names(s_terms)))
for (name in c("descriptors", "descriptors_score", "shared")) {
  r <- expected[[name]]
  cat(name, ": univariate kept", paste(r$univariate_kept, collapse = ", "),
      "| backward", paste(unlist(r$backward$selected), collapse = ", "),
      "| enter", paste(r$enter$selected, collapse = ", "), "\n")
}
writeLines(toJSON(expected, digits = NA, auto_unbox = TRUE, na = "string", pretty = TRUE),
           "expected.json")
