"""Critical values of the Anderson-Darling and Cramer-von Mises statistics for the GPD.

Case: both GPD parameters (scale and shape) estimated by maximum likelihood,
asymptotic distribution (large number of exceedances).

Source
------
Choulakian, V. and Stephens, M. A. (2001). Goodness-of-fit tests for the
generalized Pareto distribution. *Technometrics* 43(4), 478-484, Table 2.

Shape convention: the paper writes the GPD as ``F(x) = 1 - (1 - k x / a)**(1/k)``,
so its ``k`` is **minus** the ``xi`` used everywhere in evtools
(``F(x) = 1 - (1 + xi x / sigma)**(-1/xi)``). The paper's rows
``k = -0.9, -0.5, -0.2, -0.1, 0, 0.1, ..., 0.5`` are the rows
``xi = 0.9, 0.5, 0.2, 0.1, 0, -0.1, ..., -0.5`` here (stored with ``xi``
ascending). Some ports of this table (e.g. the ``palm_pareto`` helpers of the
PALM toolbox and its Python copies) attach the paper's rows to ``xi`` with
the wrong sign; the orientation used here was checked by simulation (MLE fits
of GPD samples with ``xi = 0`` and ``xi = 0.5``: the A^2 quantiles fall as
``xi`` grows, as in the rows below) and by the computation described next.

What is published and what is computed
--------------------------------------
The asymptotic null distribution of both statistics is that of
``sum_j lambda_j chi2_1``, where ``lambda_j`` are the eigenvalues of the
covariance kernel of the estimated empirical process,
``rho(s, t) = min(s, t) - s t - g(s)' I^{-1} g(t)`` with ``g = dF/d(sigma, xi)``
at ``x = F^{-1}(t)`` and ``I^{-1} = (1 + xi) [[2, -1], [-1, 1 + xi]]``
(``sigma = 1``), weighted by ``1 / sqrt(s (1 - s) t (1 - t))`` for A^2.
This is the method of the paper. ``tests/reference/gof_naive.py`` implements
it (Gauss-Legendre discretisation of the kernel, Imhof inversion):

* A^2, upper tail (``p <= 0.5``): the paper's published values, copied to
  three decimals. The independent computation reproduces all 80 of them within
  0.001, except two entries at ``p = 0.001`` (``xi = 0.1`` and ``xi = 0.2``),
  which differ by 0.004.
* A^2, lower tail (``p >= 0.75``), and all of W^2: computed with that method,
  to four decimals. The paper's W^2 points at ``p = 0.05`` and ``p = 0.005``
  (all ten rows) are reproduced within 0.001, except the ``xi = 0`` row, which
  the paper prints 0.002 higher (0.153 and 0.255 against 0.1508 and 0.2532;
  the computed values are smooth in ``xi``, the printed ones are not).
  The lower tail is not in the paper; it lets p-values above 0.5 be
  interpolated rather than capped, so that p-values are uniform under the null.

Layout
------
``XI`` : shape (10,), rows, ascending.
``PVALUES`` : shape (15,), upper-tail probabilities ``P(T > c)``, descending.
``AD_CRIT``, ``CVM_CRIT`` : shape (10, 15); entry ``[i, j]`` is the
critical value ``c`` with ``P(T > c) = PVALUES[j]`` when the shape is ``XI[i]``.
"""
import numpy as np

XI = np.array([-0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.5, 0.9])

PVALUES = np.array([
    0.999, 0.995, 0.99, 0.975, 0.95, 0.9, 0.75,
    0.5, 0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001,
])

AD_CRIT = np.array([
    [0.1180, 0.1437, 0.1590, 0.1857, 0.2136, 0.2532, 0.3432, 0.496, 0.735, 1.061, 1.321, 1.590, 1.958, 2.243, 2.922],
    [0.1146, 0.1392, 0.1537, 0.1790, 0.2054, 0.2426, 0.3267, 0.468, 0.688, 0.985, 1.221, 1.465, 1.799, 2.058, 2.674],
    [0.1118, 0.1353, 0.1492, 0.1734, 0.1984, 0.2337, 0.3130, 0.445, 0.649, 0.924, 1.140, 1.365, 1.672, 1.909, 2.475],
    [0.1093, 0.1321, 0.1454, 0.1686, 0.1926, 0.2262, 0.3015, 0.426, 0.617, 0.873, 1.074, 1.283, 1.567, 1.788, 2.314],
    [0.1073, 0.1293, 0.1422, 0.1645, 0.1876, 0.2199, 0.2918, 0.410, 0.591, 0.831, 1.020, 1.215, 1.481, 1.687, 2.176],
    [0.1055, 0.1270, 0.1395, 0.1611, 0.1835, 0.2146, 0.2838, 0.397, 0.569, 0.796, 0.974, 1.158, 1.409, 1.603, 2.064],
    [0.1041, 0.1250, 0.1372, 0.1583, 0.1800, 0.2102, 0.2769, 0.386, 0.550, 0.766, 0.935, 1.110, 1.348, 1.532, 1.966],
    [0.1029, 0.1234, 0.1353, 0.1559, 0.1771, 0.2064, 0.2712, 0.376, 0.534, 0.741, 0.903, 1.069, 1.296, 1.471, 1.893],
    [0.1003, 0.1199, 0.1313, 0.1508, 0.1708, 0.1983, 0.2587, 0.356, 0.499, 0.685, 0.830, 0.978, 1.180, 1.336, 1.707],
    [0.0985, 0.1174, 0.1283, 0.1470, 0.1661, 0.1923, 0.2492, 0.339, 0.471, 0.641, 0.771, 0.905, 1.086, 1.226, 1.559],
])

CVM_CRIT = np.array([
    [0.0143, 0.0179, 0.0200, 0.0239, 0.0280, 0.0340, 0.0483, 0.0738, 0.1158, 0.1745, 0.2216, 0.2706, 0.3376, 0.3896, 0.5130],
    [0.0139, 0.0173, 0.0194, 0.0230, 0.0269, 0.0325, 0.0457, 0.0691, 0.1069, 0.1592, 0.2009, 0.2442, 0.3034, 0.3492, 0.4582],
    [0.0136, 0.0168, 0.0188, 0.0222, 0.0259, 0.0312, 0.0436, 0.0651, 0.0997, 0.1469, 0.1843, 0.2231, 0.2761, 0.3171, 0.4146],
    [0.0133, 0.0164, 0.0183, 0.0216, 0.0251, 0.0301, 0.0417, 0.0618, 0.0936, 0.1368, 0.1709, 0.2061, 0.2541, 0.2912, 0.3796],
    [0.0130, 0.0160, 0.0178, 0.0210, 0.0243, 0.0291, 0.0401, 0.0590, 0.0886, 0.1285, 0.1599, 0.1922, 0.2362, 0.2703, 0.3513],
    [0.0128, 0.0157, 0.0174, 0.0204, 0.0237, 0.0282, 0.0387, 0.0566, 0.0844, 0.1217, 0.1508, 0.1808, 0.2217, 0.2532, 0.3283],
    [0.0125, 0.0154, 0.0170, 0.0200, 0.0231, 0.0275, 0.0375, 0.0545, 0.0809, 0.1160, 0.1433, 0.1715, 0.2097, 0.2392, 0.3094],
    [0.0123, 0.0151, 0.0167, 0.0196, 0.0226, 0.0269, 0.0365, 0.0528, 0.0779, 0.1112, 0.1371, 0.1637, 0.1998, 0.2277, 0.2939],
    [0.0119, 0.0145, 0.0160, 0.0187, 0.0215, 0.0255, 0.0343, 0.0491, 0.0716, 0.1011, 0.1240, 0.1474, 0.1791, 0.2035, 0.2616],
    [0.0116, 0.0141, 0.0155, 0.0181, 0.0207, 0.0244, 0.0327, 0.0464, 0.0670, 0.0939, 0.1147, 0.1359, 0.1646, 0.1867, 0.2393],
])

#: Smallest and largest p-value the tables can give: a statistic beyond the
#: table's last column gets ``P_MIN`` (read it as "p <= 0.001"), one below the
#: first column gets ``P_MAX`` ("p >= 0.999").
P_MIN = float(PVALUES[-1])
P_MAX = float(PVALUES[0])
