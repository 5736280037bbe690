"""Course tooling: how the course is built and checked. Learners never need to read it.

- ``rl_basics.course.checking``            the check engine behind every check cell: runs the learner's
  function and the reference on the same inputs and says what is wrong (:func:`check_function`,
  :class:`CheckFailed`); the checks themselves are in :mod:`rl_basics.checks` and :mod:`rlhf.checks`
- ``rl_basics.course.exercise_notebooks``  the exercise notebooks in ``exercises/``, generated from the
  solution notebooks: the cell tags, the stubs, ``python -m rl_basics.course.exercise_notebooks build|list``
- ``rl_basics.course.colab``               the Colab set-up cell every notebook starts with and the
  "Open in Colab" links: ``python -m rl_basics.course.colab cell|links``
- ``rl_basics.course.notebook_files``      where the notebooks are, and reading and writing them byte-stably

Nothing is imported eagerly here.
"""
