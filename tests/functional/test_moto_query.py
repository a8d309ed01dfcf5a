"""The local stack's DynamoDB Query (offline.moto_query): moto's answers, read from the partition's matching items
instead of the whole table."""

import random

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models.table import Table

from offline.moto_speed import speed_up_moto

PARTITIONS = ("api-slots", "schedule", "other")


@pytest.fixture
def dynamodb():
    speed_up_moto()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="slots",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        draw = random.Random(7)
        keys = [(draw.choice(PARTITIONS), sk / draw.choice((1, 4))) for sk in draw.sample(range(-50, 400), 300)]
        for number, (pk, sk) in enumerate(keys):
            if number == 150:  # every partition's order is kept from here on: the writes below must move it
                for partition in PARTITIONS:
                    client.query(**_condition(partition, "sk >= :a", 0))
            item = {"pk": {"S": pk}, "sk": {"N": str(sk)}}
            if draw.random() < 0.4:
                item["called_at"] = {"N": str(draw.random())}
            client.put_item(TableName="slots", Item=item)
        for pk, sk in draw.sample(keys, 60):
            client.delete_item(TableName="slots", Key={"pk": {"S": pk}, "sk": {"N": str(sk)}})
        for pk, sk in draw.sample(keys, 40):  # some update a slot, some create one again
            client.update_item(
                TableName="slots",
                Key={"pk": {"S": pk}, "sk": {"N": str(sk)}},
                UpdateExpression="SET called_at = :t",
                ExpressionAttributeValues={":t": {"N": "2"}},
            )
        yield client


def _condition(partition, condition, low, high=None):
    values = {":p": {"S": partition}, ":a": {"N": str(low)}} | ({":b": {"N": str(high)}} if high is not None else {})
    return {
        "TableName": "slots",
        "KeyConditionExpression": f"pk = :p AND {condition}",
        "ExpressionAttributeValues": values,
    }


def _queries():
    draw = random.Random(11)
    conditions = ["sk >= :a", "sk > :a", "sk <= :a", "sk < :a", "sk = :a", "sk BETWEEN :a AND :b"]
    for _ in range(100):
        condition = draw.choice(conditions)
        low = round(draw.uniform(-60, 410), 2)
        high = round(low + draw.uniform(0, 80), 2) if ":b" in condition else None
        query = _condition(draw.choice((*PARTITIONS, "absent")), condition, low, high)
        query["ScanIndexForward"] = draw.random() < 0.7
        if draw.random() < 0.6:
            query["Limit"] = draw.choice((1, 5, 64))
        if draw.random() < 0.3:
            query["ProjectionExpression"] = "sk, called_at"
        if draw.random() < 0.3:
            query["FilterExpression"] = "attribute_exists(called_at)"
        yield query


def _pages(client, query):
    pages, start = [], None
    while True:
        page = client.query(**query, **({"ExclusiveStartKey": start} if start else {}))
        pages.append((page["Items"], page["Count"], page.get("LastEvaluatedKey")))
        start = page.get("LastEvaluatedKey")
        if not start or len(pages) > 400:
            return pages


def test_the_local_stack_reads_only_the_partition_it_queries(dynamodb, monkeypatch):
    def whole_table(self):
        raise AssertionError(f"query read every item of {self.name}")

    monkeypatch.setattr(Table, "all_items", whole_table)
    page = dynamodb.query(
        TableName="slots",
        KeyConditionExpression="pk = :p AND sk >= :s",
        ExpressionAttributeValues={":p": {"S": "api-slots"}, ":s": {"N": "100"}},
        Limit=3,
    )
    assert [float(item["sk"]["N"]) for item in page["Items"]] == sorted(float(i["sk"]["N"]) for i in page["Items"])
    assert len(page["Items"]) == 3 and all(float(item["sk"]["N"]) >= 100 for item in page["Items"])


def test_every_answer_and_page_is_moto_s_own(dynamodb, monkeypatch):
    queries = list(_queries())
    narrowed = [_pages(dynamodb, query) for query in queries]
    monkeypatch.setattr(Table, "query", Table.query.__wrapped__)
    assert [_pages(dynamodb, query) for query in queries] == narrowed
    assert sum(bool(pages[0][0]) for pages in narrowed) > 50  # most queries return items
