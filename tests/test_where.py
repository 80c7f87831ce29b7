"""The `where` compiler against a real table in each database a catalog lives in (SQLite, PostgreSQL): items whose
attributes are a JSON column, selected with the compiled fragment through the database's typed field expressions,
as the catalog does (docs/protocol.md §4 /query and §5 mosaic rules); both give the same answers."""
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgsvc.catalog.backend import open_backend, sql_string
from imgsvc.catalog.records import Field, FieldType
from imgsvc.catalog.sqlite import SQLiteBackend
from imgsvc.catalog.where import MAX_IN_VALUES, MAX_TEXT_BYTES, compile_where
from imgsvc.errors import ErrorKind, ImgsvcError

FIELDS = (Field("Name", FieldType.TEXT), Field("Year", FieldType.INTEGER), Field("Cloud", FieldType.DOUBLE),
          Field("AcquisitionDate", FieldType.DATE), Field("Date", FieldType.DATE), Field("Sensor", FieldType.TEXT),
          Field("Field Name", FieldType.TEXT), Field('Say "hi"', FieldType.TEXT), Field("it's", FieldType.TEXT))


def ms(iso: str) -> int:
    """Epoch milliseconds of a UTC ISO time, computed apart from the module under test."""
    return round(datetime.fromisoformat(iso).replace(tzinfo=timezone.utc).timestamp() * 1000)


# Missing keys and JSON nulls are both NULL attributes: rows 2 and 4 have no Sensor, row 4 no Cloud, 5 no dates.
ITEMS = {
    1: {"Name": "Alpha", "Year": 2018, "Cloud": 0.5, "AcquisitionDate": ms("2018-06-01T00:00:00"), "Sensor": "WV2",
        "Field Name": "a b", 'Say "hi"': "yes", "it's": "mine", "Date": ms("2018-06-02T00:00:00")},
    2: {"Name": "beta", "Year": 2019, "Cloud": 12.25, "AcquisitionDate": ms("2019-12-31T23:59:59.999"),
        "Sensor": None, "Date": ms("2020-01-05T00:00:00")},
    3: {"Name": "O'Brien", "Year": 2020, "Cloud": 30, "AcquisitionDate": ms("2020-01-01T00:00:00"), "Sensor": "WV3"},
    4: {"Name": "50% off", "Year": 2021, "AcquisitionDate": ms("2021-03-15T12:30:00")},
    5: {"Name": "under_score", "Year": 2022, "Cloud": 100.0, "Sensor": "WV2"},
}


class Names:
    """The catalog's dialect over the test's field names, which the catalog itself would not register (spaces,
    quotes).  SQLite's JSON paths cannot hold a double quote, so such a name is read through json_each there."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.like, self.like_without_escape = backend.like, backend.like_without_escape

    def field_column(self, field: Field) -> str:
        if '"' in field.name and isinstance(self.backend, SQLiteBackend):
            return f"(SELECT value FROM json_each(items.attributes) WHERE key = {sql_string(field.name)})"
        return self.backend.json_value(field.name, field.type)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request, tmp_path_factory):
    location = (request.getfixturevalue("postgres").new_database() if request.param == "postgresql"
                else tmp_path_factory.mktemp("where") / "items.sqlite")
    backend = open_backend(location, readonly=False)
    backend.set_schema_version(0)  # not a catalog: just its version number, which any write would change
    with backend.transaction():
        backend.execute(f"CREATE TABLE items (id INTEGER PRIMARY KEY, attributes {backend.json_type} NOT NULL)")
        backend.executemany("INSERT INTO items VALUES (?, ?)", [(i, json.dumps(a)) for i, a in ITEMS.items()])
    return Names(backend)


# The names the compiler is given where no database is needed.
names = Names(SQLiteBackend(Path("unused.sqlite"), readonly=True))


def snapshot(db) -> tuple:
    """The rows, and which version of them (what any write would change)."""
    return db.backend.execute("SELECT * FROM items ORDER BY id").fetchall(), db.backend.version()


def select(db, text: str) -> list[int]:
    sql, params = compile_where(text, FIELDS, db)
    return [row[0] for row in db.backend.execute(f"SELECT id FROM items WHERE {sql} ORDER BY id", params)]


def refusal(text: str, fields=FIELDS, **kwargs) -> ImgsvcError:
    with pytest.raises(ImgsvcError) as info:
        compile_where(text, fields, names, **kwargs)
    error = info.value
    assert error.kind is ErrorKind.INVALID_ARGUMENT and error.code == 400
    (detail,) = error.details
    assert detail.startswith("where")
    return error


# What the compiled SQL may be made of besides the caller's column expressions: proof that no client text gets in.
SQL_VOCABULARY = re.compile(r"(?:\s+|[()?,]|=|<>|<=|>=|<|>|AND|OR|NOT|IN|BETWEEN|I?LIKE|ESCAPE ''|ESCAPE|IS|NULL|1)*")


def assert_only_own_sql(sql: str, db=names) -> None:
    for field in FIELDS:
        sql = sql.replace(db.field_column(field), " ")
    assert SQL_VOCABULARY.fullmatch(sql), sql


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_an_empty_clause_selects_everything(db, text):
    assert compile_where(text, FIELDS, names) == ("1 = 1", [])
    assert select(db, text) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("text, ids", [
    ("1=1", [1, 2, 3, 4, 5]), ("1 = 1", [1, 2, 3, 4, 5]), ("''=''", [1, 2, 3, 4, 5]), ("1=2", []),
    ("'a' <> 'b'", [1, 2, 3, 4, 5]), ("1 = '1'", [1, 2, 3, 4, 5]), ("date '2020-01-01' < '2021-01-01'", [1, 2, 3, 4, 5]),
])
def test_literals_compare_with_literals_so_tautologies_work(db, text, ids):
    assert select(db, text) == ids


@pytest.mark.parametrize("text, ids", [
    ("Year = 2019", [2]), ("Year <> 2019", [1, 3, 4, 5]), ("Year != 2019", [1, 3, 4, 5]), ("Year < 2020", [1, 2]),
    ("Year <= 2020", [1, 2, 3]), ("Year > 2020", [4, 5]), ("Year >= 2020", [3, 4, 5]),
    ("Name = 'beta'", [2]), ("Name > 'a'", [2, 5]), ("Cloud >= 12.25", [2, 3, 5]), ("Cloud < .6", [1]),
    ("Cloud < 1.3e1", [1, 2]), ("Cloud < 1.3E+1", [1, 2]), ("Cloud > -1", [1, 2, 3, 5]), ("Year > +2021", [5]),
    ("Cloud = 30", [3]), ("Cloud = 3e1", [3]), ("Year = 2019.0", [2]), ("Year = '2020'", [3]),
    ("Year = ' 2020 '", [3]), ("2019 < Year", [3, 4, 5]), ("'beta' = Name", [2]),
    ("Year > Cloud", [1, 2, 3, 5]), ("Name = Sensor", []), ("Name <> Sensor", [1, 3, 5]),
])
def test_comparisons(db, text, ids):
    assert select(db, text) == ids


@pytest.mark.parametrize("text, ids", [
    ("Year IN (2018, 2020, 1999)", [1, 3]), ("Year NOT IN (2018, 2020)", [2, 4, 5]), ("Name IN ('beta')", [2]),
    ("Sensor IN ('WV2', 'WV3')", [1, 3, 5]), ("Sensor NOT IN ('WV2')", [3]), ("Year in ('2018')", [1]),
    ("Year BETWEEN 2019 AND 2021", [2, 3, 4]), ("Year NOT BETWEEN 2019 AND 2021", [1, 5]),
    ("Cloud BETWEEN 0 AND Year", [1, 2, 3, 5]), ("Name BETWEEN 'a' AND 'c'", [2]),
    ("Name IS NULL", []), ("Sensor IS NULL", [2, 4]), ("Sensor IS NOT NULL", [1, 3, 5]), ("Cloud is null", [4]),
])
def test_in_between_and_null(db, text, ids):
    assert select(db, text) == ids


@pytest.mark.parametrize("text, ids", [
    ("Name LIKE 'b%'", [2]), ("Name LIKE 'B%'", [2]),  # case-insensitive, as the module docstring decides
    ("Name LIKE '%a'", [1, 2]), ("Name LIKE '_eta'", [2]), ("Name LIKE '____'", [2]), ("Name NOT LIKE '%a%'", [3, 4, 5]),
    ("Name LIKE '%!%%' ESCAPE '!'", [4]), ("Name LIKE '%%%'", [1, 2, 3, 4, 5]), ("Name LIKE '%\\_%' ESCAPE '\\'", [5]),
    ("Name LIKE '%_%'", [1, 2, 3, 4, 5]), ("Name LIKE 'O''%'", [3]), ("Name = 'O''Brien'", [3]),
    ("Name LIKE '%''''%' ESCAPE ''''", [3]), ("Name LIKE '%''%%' ESCAPE ''''", [4]), ("Sensor NOT LIKE 'WV2'", [3]),
])
def test_like_with_wildcards_escapes_and_quotes(db, text, ids):
    assert select(db, text) == ids


@pytest.mark.parametrize("text, ids", [
    ("AcquisitionDate > date '2020-01-01'", [4]), ("AcquisitionDate >= date '2020-01-01'", [3, 4]),
    ("AcquisitionDate = timestamp '2019-12-31 23:59:59.999'", [2]),
    ("AcquisitionDate = TIMESTAMP '2019-12-31T23:59:59.999Z'", [2]),
    ("AcquisitionDate = timestamp '2019-12-31T23:59:59.9991234'", [2]),  # beyond milliseconds is dropped
    ("AcquisitionDate < timestamp '2019-12-31 23:59:59'", [1]), ("AcquisitionDate = date '2021-03-15 12:30'", [4]),
    ("AcquisitionDate = timestamp '2021-03-15T14:30:00+02:00'", [4]),
    ("AcquisitionDate = timestamp '2021-03-15T07:30:00-05:00'", [4]),
    ("AcquisitionDate < '2019-01-01'", [1]), ("AcquisitionDate = '2020-01-01T00:00:00Z'", [3]),
    ("AcquisitionDate BETWEEN date '2019-01-01' AND '2020-12-31'", [2, 3]),
    ("AcquisitionDate IN (date '2020-01-01', '2018-06-01')", [1, 3]), ("AcquisitionDate IS NULL", [5]),
    ("Date > date '2020-01-01'", [2]), ("date '2020-01-01' < Date", [2]), ("Date > AcquisitionDate", [1, 2]),
    ('"Date" < DATE \'2019-01-01\'', [1]),
])
def test_dates_and_timestamps_compare_as_epoch_milliseconds_utc(db, text, ids):
    assert select(db, text) == ids


@pytest.mark.parametrize("text, ids", [
    # NULL attributes: a comparison is not true, and neither is its negation.
    ("Cloud < 50", [1, 2, 3]), ("NOT Cloud < 50", [5]), ("NOT (Cloud < 50)", [5]), ("Sensor <> 'WV2'", [3]),
    ("NOT Sensor = 'WV2'", [3]), ("Cloud < 50 OR Cloud >= 50", [1, 2, 3, 5]),
    # NOT > AND > OR
    ("Year = 2018 OR Year = 2019 AND Cloud > 20", [1]), ("(Year = 2018 OR Year = 2019) AND Cloud > 20", []),
    ("Year = 2018 OR Year > 2019 AND Cloud > 20", [1, 3, 5]), ("NOT Year = 2018 AND Year < 2021", [2, 3]),
    ("NOT (Year = 2018 AND Year < 2021)", [2, 3, 4, 5]), ("NOT NOT Year = 2018", [1]),
    ("Year = 2018 AND Cloud < 1 OR Year = 2022 AND Cloud > 1", [1, 5]),
    ("Year BETWEEN 2018 AND 2019 AND Cloud > 1", [2]), ("((Year = 2018))", [1]),
    ("year between 2019 AND 2020 Or NAME like 'a%' aNd NoT sensor iS nUlL", [1, 2, 3]),
])
def test_null_semantics_precedence_and_keyword_case(db, text, ids):
    assert select(db, text) == ids


@pytest.mark.parametrize("text, ids", [
    ("name = 'Alpha'", [1]), ("NAME = 'Alpha'", [1]), ('"Name" = \'Alpha\'', [1]), ('"nAmE" = \'Alpha\'', [1]),
    ('"Field Name" = \'a b\'', [1]), ('"field name" IS NOT NULL', [1]), ('"Say ""hi""" = \'yes\'', [1]),
    ("\"it's\" = 'mine'", [1]),
])
def test_field_names_match_case_insensitively_bare_or_double_quoted(db, text, ids):
    assert select(db, text) == ids


def test_an_exact_name_wins_over_one_differing_in_case_and_two_differing_only_in_case_are_ambiguous():
    fields = (Field("name", FieldType.TEXT), Field("NAME", FieldType.INTEGER))
    dialect = SimpleNamespace(like="LIKE", like_without_escape="", field_column=lambda f: f"c_{f.type.name}")
    assert compile_where("NAME = 1", fields, dialect) == ("(c_INTEGER = ?)", [1])
    assert "several fields" in refusal("Name = 1", fields).details[0]


def test_the_caller_names_the_parameter_of_its_refusals():
    assert refusal("Nope = 1").parameter == "where"
    error = refusal("Nope = 1", parameter="mosaicRule")
    assert error.parameter == "mosaicRule" and error.details == ("where: unknown field 'Nope' at position 1.",)


@pytest.mark.parametrize("text, detail", [
    ("Nope = 1", "where: unknown field 'Nope' at position 1."),
    ('"Na me" = 1', "where: unknown field 'Na me' at position 1."),
    ("Name = 5", "where: cannot compare the TEXT field 'Name' with the number '5' at position 8."),
    ("Name IN ('a', 5)", "where: cannot compare the TEXT field 'Name' with the number '5' at position 15."),
    ("Year = 'abc'", "where: cannot compare the INTEGER field 'Year' with the string 'abc' at position 8."),
    ("Cloud BETWEEN 1 AND 'x'", "where: cannot compare the DOUBLE field 'Cloud' with the string 'x' at position 21."),
    ("Name = Year", "where: cannot compare the TEXT field 'Name' with the INTEGER field 'Year' at position 8."),
    ("Year = date '2020-01-01'", "where: cannot compare the INTEGER field 'Year' with the date date '2020-01-01' at position 8."),
    ("AcquisitionDate > 5", "where: cannot compare the DATE field 'AcquisitionDate' with the number '5' at position 19."),
    ("AcquisitionDate > 'soon'", "where: cannot compare the DATE field 'AcquisitionDate' with the string 'soon' at position 19."),
    ("1 = 'one'", "where: cannot compare the number '1' with the string 'one' at position 5."),
    ("Cloud LIKE '1%'", "where: LIKE applies to TEXT fields only, not to the DOUBLE field 'Cloud' at position 1."),
    ("Name LIKE 5", "where: expected a pattern string after LIKE, not '5' at position 11."),
    ("Name LIKE 'a' ESCAPE '!!'", "where: the ESCAPE string must be one character, not '!!' at position 22."),
    ("Name LIKE 'a!' ESCAPE '!'", "where: the pattern 'a!' ends with its escape character at position 11."),
    ("Name LIKE '!!!' ESCAPE '!'", "where: the pattern '!!!' ends with its escape character at position 11."),
    ("Name = 'a\x00'", "where: the NUL character at position 10 is not allowed."),
    ("'a' LIKE 'a'", "where: LIKE needs a field on its left, not the string 'a' at position 1."),
    ("Year = NULL", "where: 'NULL' is only written in IS NULL or IS NOT NULL at position 8."),
    ("Year IS 5", "where: expected NULL after IS, not '5' at position 9."),
    ("Year IN ()", "where: expected a field or a value, not ')' at position 10."),
    ("Year IN (Cloud)", "where: an IN list holds values, not fields such as 'Cloud' at position 10."),
    ("Year BETWEEN 1 OR 2", "where: expected AND between the bounds of BETWEEN, not 'OR' at position 16."),
    ("Year NOT = 1", "where: expected IN, BETWEEN or LIKE after 'Year', not '=' at position 10."),
    ("Year", "where: expected a comparison operator, IN, BETWEEN, LIKE or IS after 'Year', not the end of the clause at position 5."),
    ("Year = ", "where: expected a field or a value, not the end of the clause at position 8."),
    ("(Year = 1", "where: expected ')', not the end of the clause at position 10."),
    ("Year = 1)", "where: expected AND, OR or the end of the clause, not ')' at position 9."),
    ("Year = 1 Year = 2", "where: expected AND, OR or the end of the clause, not 'Year' at position 10."),
    ("AND Year = 1", "where: expected a field or a value, not the keyword 'AND' at position 1."),
    ("Name = 'abc", "where: an unterminated string at position 8."),
    ('"Name = 1', "where: an unterminated quoted field name at position 1."),
    ("Year = 1 & 1", "where: an unexpected character '&' at position 10."),
    ("Year = - x", "where: expected a number after '-', not 'x' at position 10."),
    ("Year = 99999999999999999999", "where: the number '99999999999999999999' is out of range at position 8."),
    ("Year = 9223372036854775808", "where: the number '9223372036854775808' is out of range at position 8."),
    ("Cloud < 1e999", "where: the number '1e999' is out of range at position 9."),
    ("AcquisitionDate > date '2020-02-30'", "where: date '2020-02-30' is not a valid date at position 19."),
    ("AcquisitionDate > date '2020-01-01 24:00'", "where: date '2020-01-01 24:00' is not a valid date at position 19."),
    ("AcquisitionDate > date '0000-01-01'", "where: date '0000-01-01' is not a valid date at position 19."),
    ("AcquisitionDate > timestamp '2020-01-01T00:00+24:00'",
     "where: timestamp '2020-01-01T00:00+24:00' is not a valid date at position 19."),
    ("AcquisitionDate > date '1/2/2020'",
     "where: expected a date as 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS', not date '1/2/2020' at position 19."),
    ("upper(Name) = 'A'", "where: functions such as 'upper' are not supported at position 1."),
    ("Year ın (1)", "where: expected a comparison operator, IN, BETWEEN, LIKE or IS after 'Year', not 'ın' at position 6."),
])
def test_refusals_name_the_token_and_its_position(text, detail):
    assert refusal(text).details == (detail,)


def test_the_largest_ints_are_bound_and_a_lone_surrogate_is_refused(db):
    assert compile_where("Year < 9223372036854775807", FIELDS, names)[1] == [9223372036854775807]
    assert compile_where("Year > -9223372036854775808", FIELDS, names)[1] == [-9223372036854775808]
    assert compile_where("Year = 000000000000000000000002019", FIELDS, names)[1] == [2019]
    assert compile_where("Year > -" + "0" * 5000 + "1", FIELDS, names)[1] == [-1]  # past Python's 4300 digits
    # JSON's "\ud800" escape gives a string no SQLite binding could encode.
    assert refusal("Name = '\ud800'").details == ("where: the character at position 9 is not valid Unicode.",)


def test_bounds_on_size_nesting_and_in_lists(db):
    assert "8192" in refusal("Name = '" + "x" * MAX_TEXT_BYTES + "'").details[0]
    assert "8192" in refusal("Name = '" + "é" * (MAX_TEXT_BYTES // 2) + "'").details[0]  # bytes, not characters
    assert select(db, "(" * 32 + "Year = 2018" + ")" * 32) == [1]
    assert refusal("(" * 33 + "Year = 2018" + ")" * 33).details == (
        "where: parentheses and NOT nest at most 32 deep; '(' is one more at position 33.",)
    assert select(db, "NOT " * 32 + "Year = 2018") == [1]
    assert "nest at most 32" in refusal("NOT " * 33 + "Year = 2018").details[0]
    assert "nest at most 32" in refusal("(" * 5000).details[0]
    values = ", ".join(str(v) for v in range(2000, 2000 + MAX_IN_VALUES))
    assert select(db, f"Year IN ({values})") == [1, 2, 3, 4, 5]
    assert refusal(f"Year IN ({values}, 1)").details == (
        f"where: an IN list holds at most {MAX_IN_VALUES} values; '1' is one more at position {len(values) + 12}.",)


def test_a_clause_as_long_as_accepted_still_runs(db):
    # A left-deep chain of this many ORs passes SQLite's expression depth limit of 1000; the compiler balances it.
    text = " OR ".join(["1=2"] * 1169) + " OR Year=2018"
    assert len(text) <= MAX_TEXT_BYTES and text.count("OR") > 1000
    assert select(db, text) == [1]
    text = " AND ".join(["1=1"] * 1024)
    assert len(text) <= MAX_TEXT_BYTES and text.count("AND") > 1000
    assert select(db, text) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("text, ids", [
    ("1=1; DROP TABLE items", None), ("Name = 'x' OR 1=1 --", None), ("Name = 'x' OR 1=1 /* */", None),
    ("Name = ''); DELETE FROM items; --'", None), ("Name = '''); DELETE FROM items; --'", []), ("Name = 'x'' OR ''1''=''1'", []),
    ("Name = 'x' OR 'a'='a'", [1, 2, 3, 4, 5]),  # means what it says: every item
    ("json_extract(attributes, '$.Name') = 'Alpha'", None), ("attributes = 1", None), ("id = 1", None),
    ("(SELECT 1) = 1", None), ("Year IN (SELECT id FROM items)", None), ("Name = (SELECT 'Alpha')", None),
    ("Name = 'Alpha' UNION SELECT 1", None), ("\"Name\"\" = 1 OR \"\"Name\" = 'Alpha'", None),
    ('"Name"" OR 1=1 --" = 1', None), ("\"it's\" = 'x'' OR 1=1 --'", []), ("Name = char(65)", None),
    ("Name = 'Alpha' COLLATE NOCASE", None), ("Name LIKE 'a' ESCAPE ''' OR 1=1 --'", None),
    ("Year = 2018 OR sqlite_version() > ''", None), ("Name = x'41'", None), ("Name = ?", None),
    ("Name = :name", None), ("Year = 0x7E2", None), ("Name IS NOT NULL AND randomblob(1000000000)", None),
])
def test_injection_attempts_are_refused_or_harmless(db, text, ids):
    before = snapshot(db)
    if ids is None:
        refusal(text)
    else:
        assert_only_own_sql(compile_where(text, FIELDS, db)[0], db)
        assert select(db, text) == ids
    assert snapshot(db) == before


VOCABULARY = ["Name", "year", "Cloud", "AcquisitionDate", "Date", '"Field Name"', '"Say ""hi"""', "Nope", "AND", "OR",
              "NOT", "IN", "BETWEEN", "LIKE", "ESCAPE", "IS", "NULL", "date", "timestamp", "=", "<>", "!=", "<", "<=",
              ">", ">=", "(", ")", ",", "-", "+", "1", "2018", "-3.5e2", ".5", "1e999", "'WV2'", "'%a_'", "'!'", "''",
              "'2020-01-01'", "'2019-12-31T23:59:59.5Z'", "'x''y'", "';'", ";", "--", "'", '"', "\x00", "é", "ın", "0" * 4400 + "7"]


def assert_compiles_and_runs_or_is_refused(db, text: str) -> None:
    before = snapshot(db)
    try:
        sql, params = compile_where(text, FIELDS, db)
    except ImgsvcError as error:
        assert error.kind is ErrorKind.INVALID_ARGUMENT and error.details[0].startswith("where")
    else:
        assert_only_own_sql(sql, db)
        db.backend.execute(f"SELECT id FROM items WHERE {sql}", params).fetchall()
    assert snapshot(db) == before


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_fuzz_random_text(db, text):
    assert_compiles_and_runs_or_is_refused(db, text)


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(st.sampled_from(VOCABULARY), max_size=30), glue=st.sampled_from([" ", "", "\n"]))
def test_fuzz_token_soups(db, tokens, glue):
    assert_compiles_and_runs_or_is_refused(db, glue.join(tokens))


predicates = st.sampled_from(["Year = 2018", "Name LIKE 'b%'", "Sensor IS NULL", "Cloud BETWEEN 0 AND 20",
                              "Year IN (2019, 2020)", "AcquisitionDate > date '2019-06-01'", "1=1", "''=''"])
clauses = st.recursive(predicates, lambda inner: st.one_of(
    st.builds("NOT {}".format, inner), st.builds("({})".format, inner),
    st.builds("{} AND {}".format, inner, inner), st.builds("{} OR {}".format, inner, inner)), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(text=clauses)
def test_fuzz_valid_clauses_always_compile_and_run(db, text):
    sql, params = compile_where(text, FIELDS, db)
    assert_only_own_sql(sql, db)
    db.backend.execute(f"SELECT id FROM items WHERE {sql}", params).fetchall()
